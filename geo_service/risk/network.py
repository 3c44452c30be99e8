"""A drivable road network from line layers, and travel times over it from several sources.

Topology is worked out in one metric CRS (a city's zone): line parts are cut into straight
segments, roads that cross in the plane are cut at the crossing (``node_crossings``; never a
bridge or tunnel, which meets other roads only at its ends), a line end within
``junction_tolerance_m`` of another line is joined to it (a side road digitised to the kerb of a
main road), and segment ends are snapped to a ``grid_m`` grid so ends that meet become one node.
Lengths are measured on the spheroid (``pyproj.Geod``) from the segment ends, so a network
spread over two Gauss–Krüger zones is measured as exactly as one inside a zone.

Travel times come from one multi-source Dijkstra (``scipy.sparse.csgraph.dijkstra`` with
``min_only``): every source (a fire station) joins the network at the nearest point of its
nearest edge, through a virtual node, after an off-network stretch at ``access_speed_kmh``; a
target joins the same way. A target on a piece of network no source reaches gets an infinite
time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, dijkstra

from geo_service.metric import GEOD, WGS84

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
GeomArray = NDArray[np.object_]

_EPS_T = 1e-9  # a cut this close to a segment's end is its end
_MIN_WEIGHT = 1e-12  # csgraph reads an explicit zero as "no edge"
_TOUCH_M = 1e-6  # a line end this close to another line already touches it


@dataclass(frozen=True)
class RoadNetwork:
    """Undirected edges between snapped nodes; each edge a straight piece of one input line.

    ``a``/``b`` are an edge's ends in ``crs`` (unsnapped), ``metres`` its length on the
    spheroid, ``minutes`` its travel time, ``line`` the index of the input line it comes from.
    """

    crs: pyproj.CRS
    u: IntArray
    v: IntArray
    a: FloatArray
    b: FloatArray
    metres: FloatArray
    minutes: FloatArray
    line: IntArray
    n_nodes: int

    @property
    def n_edges(self) -> int:
        """How many edges."""
        return len(self.u)

    @cached_property
    def geometries(self) -> GeomArray:
        """Each edge as a two-point line in ``crs``."""
        return shapely.linestrings(np.stack([self.a, self.b], axis=1))

    @cached_property
    def tree(self) -> shapely.STRtree:
        """A spatial index on the edges."""
        return shapely.STRtree(self.geometries)

    def subset(self, keep: NDArray[np.bool_]) -> RoadNetwork:
        """The network with only the edges where ``keep`` holds (node numbers unchanged)."""
        return RoadNetwork(
            self.crs,
            self.u[keep],
            self.v[keep],
            self.a[keep],
            self.b[keep],
            self.metres[keep],
            self.minutes[keep],
            self.line[keep],
            self.n_nodes,
        )


@dataclass(frozen=True)
class Attachment:
    """Where geometries join the network.

    The nearest edge (-1 when the network has none), the fraction along it from ``u`` to ``v``,
    the point there (in the network's CRS) and the off-network distance in metres.
    """

    edge: IntArray
    fraction: FloatArray
    point: FloatArray
    access_m: FloatArray


@dataclass(frozen=True)
class Reach:
    """Travel from the nearest source to every node.

    Minutes (inf where none reaches, a source's off-network stretch included), the metres driven
    on the network, and which source (-1 where none).
    """

    minutes: FloatArray
    metres: FloatArray
    source: IntArray
    sources: Attachment
    source_minutes: FloatArray  # each source's off-network minutes to its edge


@dataclass(frozen=True)
class Arrival:
    """How each target is reached.

    Total minutes (network and both off-network stretches; inf when unreachable), metres on the
    network, and the source that gets there first (-1: none).
    """

    minutes: FloatArray
    metres: FloatArray
    source: IntArray


def build_network(
    lines: GeomArray,
    speeds_kmh: FloatArray,
    crs: pyproj.CRS,
    *,
    grid_m: float = 1.0,
    junction_tolerance_m: float = 0.0,
    node_crossings: bool = True,
    grade_separated: NDArray[np.bool_] | None = None,
) -> RoadNetwork:
    """The network of ``lines`` (EPSG:4326, any mix of LineString/MultiLineString).

    ``speeds_kmh[i]`` is the travel speed on line ``i``; lines with a speed that is not
    positive are left out. A line marked ``grade_separated`` (a bridge, a tunnel) meets
    other lines only at its ends, never where it crosses them.
    """
    lines = np.asarray(lines, dtype=object)
    speeds_kmh = np.asarray(speeds_kmh, dtype=float)
    usable = ~(shapely.is_missing(lines) | shapely.is_empty(lines)) & (speeds_kmh > 0)
    kept = np.flatnonzero(usable)
    parts, part_of = shapely.get_parts(lines[kept], return_index=True)
    part_line = kept[part_of]
    parts = shapely.transform(parts, _transformer(WGS84, crs), interleaved=False)
    coords, coord_part = shapely.get_coordinates(parts, return_index=True)
    same = coord_part[1:] == coord_part[:-1]
    a, b, seg_part = coords[:-1][same], coords[1:][same], coord_part[:-1][same]
    nonzero = np.any(a != b, axis=1)
    a, b, seg_part = a[nonzero], b[nonzero], seg_part[nonzero]

    segments = shapely.linestrings(np.stack([a, b], axis=1)) if len(a) else np.zeros(0, object)
    cuts = [_no_cuts()]
    if node_crossings and len(a):
        separated = np.zeros(len(lines), dtype=bool)
        if grade_separated is not None:
            separated = np.asarray(grade_separated, dtype=bool)
        cuts.append(_crossing_cuts(a, b, segments, separated[part_line[seg_part]]))
    connectors = np.zeros((0, 2, 2))
    connector_part = np.zeros(0, dtype=np.intp)
    if junction_tolerance_m > 0 and len(a):
        end_cuts, connectors, connector_part = _junction_cuts(
            a, b, segments, seg_part, coords, coord_part, junction_tolerance_m
        )
        cuts.append(end_cuts)
    pa, pb, piece_seg = _cut(a, b, np.concatenate(cuts))
    ea = np.concatenate([pa, connectors[:, 0]])
    eb = np.concatenate([pb, connectors[:, 1]])
    edge_part = np.concatenate([seg_part[piece_seg], connector_part])

    node = _snap(np.concatenate([ea, eb]), grid_m)
    u, v = node[: len(ea)], node[len(ea) :]
    n_nodes = int(node.max()) + 1 if len(node) else 0
    proper = u != v
    ea, eb, u, v, edge_part = ea[proper], eb[proper], u[proper], v[proper], edge_part[proper]
    metres = geodesic_m(crs, ea, eb)
    line = part_line[edge_part]
    minutes = metres / (speeds_kmh[line] * 1000.0 / 60.0)
    return RoadNetwork(crs, u, v, ea, eb, metres, minutes, line, n_nodes)


def attach(network: RoadNetwork, geoms: GeomArray) -> Attachment:
    """Join geometries (EPSG:4326) to their nearest edge, at the nearest point on it."""
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if network.n_edges == 0 or n == 0:
        return Attachment(
            np.full(n, -1, dtype=np.intp), np.zeros(n), np.full((n, 2), np.nan), np.full(n, np.inf)
        )
    metric = shapely.transform(geoms, _transformer(WGS84, network.crs), interleaved=False)
    # asked in spatial order, neighbouring queries walk the same tree nodes (3x faster)
    order = _spatial_order(metric)
    found, nearest = network.tree.query_nearest(metric[order], all_matches=False)
    which = order[found]
    edge = np.full(n, -1, dtype=np.intp)
    fraction, access = np.zeros(n), np.full(n, np.inf)
    point = np.full((n, 2), np.nan)
    edge[which] = nearest
    bridge = shapely.get_coordinates(
        shapely.shortest_line(metric[which], network.geometries[nearest])
    )
    near, on_edge = bridge[0::2], bridge[1::2]
    fraction[which] = _along(network.a[nearest], network.b[nearest], on_edge)
    point[which] = on_edge
    access[which] = geodesic_m(network.crs, near, on_edge)
    return Attachment(edge, fraction, point, access)


def reach_from(network: RoadNetwork, sources: Attachment, access_speed_kmh: float) -> Reach:
    """Minutes from the nearest source to every node (one multi-source Dijkstra)."""
    n, k = network.n_nodes, len(sources.edge)
    on = sources.edge >= 0
    access_min = sources.access_m / (access_speed_kmh * 1000.0 / 60.0)
    if n == 0 or not on.any():
        return Reach(np.full(n, np.inf), np.full(n, np.nan), np.full(n, -1), sources, access_min)
    # virtual node n + i for source i, joined to both ends of its edge
    src = np.flatnonzero(on)
    e, f = sources.edge[src], sources.fraction[src]
    virtual = n + src
    tail = np.concatenate([network.u, virtual, virtual])
    head = np.concatenate([network.v, network.u[e], network.v[e]])
    minutes = np.concatenate(
        [
            network.minutes,
            access_min[src] + f * network.minutes[e],
            access_min[src] + (1 - f) * network.minutes[e],
        ]
    )
    metres = np.concatenate([network.metres, f * network.metres[e], (1 - f) * network.metres[e]])
    graph, keys, key_metres = _graph(tail, head, minutes, metres, n + k)
    dist, pred, origin = dijkstra(
        graph, directed=True, indices=virtual, return_predecessors=True, min_only=True
    )
    travelled = _path_metres(pred, keys, key_metres, n + k)
    origin = np.where(origin >= 0, origin - n, -1)
    return Reach(dist[:n], travelled[:n], origin[:n], sources, access_min)


def arrive(
    network: RoadNetwork, reach: Reach, targets: Attachment, access_speed_kmh: float
) -> Arrival:
    """How soon each target is reached.

    Through either end of its edge, or straight along the edge from a source on the same edge.
    """
    n = len(targets.edge)
    if n == 0 or network.n_edges == 0:
        return Arrival(np.full(n, np.inf), np.full(n, np.nan), np.full(n, -1, dtype=np.intp))
    e = np.where(targets.edge >= 0, targets.edge, 0)
    f = targets.fraction
    u, v = network.u[e], network.v[e]
    via_u = reach.minutes[u] + f * network.minutes[e]
    via_v = reach.minutes[v] + (1 - f) * network.minutes[e]
    use_v = via_v < via_u
    minutes = np.where(use_v, via_v, via_u)
    metres = np.where(
        use_v,
        reach.metres[v] + (1 - f) * network.metres[e],
        reach.metres[u] + f * network.metres[e],
    )
    source = np.where(use_v, reach.source[v], reach.source[u])

    # a source on the target's own edge drives straight along it
    pair_t, pair_s = _same_edge_pairs(np.where(targets.edge >= 0, e, -1), reach.sources.edge)
    if len(pair_t):
        share = np.abs(f[pair_t] - reach.sources.fraction[pair_s])
        direct = reach.source_minutes[pair_s] + share * network.minutes[e[pair_t]]
        order = np.lexsort((pair_s, direct, pair_t))
        pair_t, pair_s, direct, share = (
            pair_t[order],
            pair_s[order],
            direct[order],
            share[order],
        )
        first = np.r_[True, pair_t[1:] != pair_t[:-1]]
        pt, ps, dt, sh = pair_t[first], pair_s[first], direct[first], share[first]
        better = dt < minutes[pt]
        pt, ps, dt, sh = pt[better], ps[better], dt[better], sh[better]
        minutes[pt] = dt
        metres[pt] = sh * network.metres[e[pt]]
        source[pt] = ps

    minutes = minutes + targets.access_m / (access_speed_kmh * 1000.0 / 60.0)
    unreachable = (targets.edge < 0) | ~np.isfinite(minutes)
    minutes[unreachable] = np.inf
    metres[unreachable] = np.nan
    source[unreachable] = -1
    return Arrival(minutes, metres, source)


def reachable_pieces(
    network: RoadNetwork, reach: Reach, budget_minutes: float
) -> tuple[GeomArray, IntArray]:
    """The parts of edges reached within ``budget_minutes``, and the source reaching each.

    An edge is covered from each end as far as the time left allows, and around a source
    attached to it. Lines are in the network's CRS.
    """
    t_u, t_v = reach.minutes[network.u], reach.minutes[network.v]
    cost = np.maximum(network.minutes, _MIN_WEIGHT)
    with np.errstate(invalid="ignore"):
        from_u = np.clip((budget_minutes - t_u) / cost, 0, 1)
        from_v = np.clip((budget_minutes - t_v) / cost, 0, 1)
    from_u, from_v = np.nan_to_num(from_u), np.nan_to_num(from_v)
    whole = from_u + from_v >= 1
    idx = np.arange(network.n_edges)
    # (edge, start, end, source) of each piece
    starts = [np.zeros(whole.sum()), np.zeros((~whole & (from_u > 0)).sum())]
    ends = [np.ones(whole.sum()), from_u[~whole & (from_u > 0)]]
    edges = [idx[whole], idx[~whole & (from_u > 0)]]
    nearer_u = t_u <= t_v
    labels = [
        np.where(nearer_u, reach.source[network.u], reach.source[network.v])[whole],
        reach.source[network.u][~whole & (from_u > 0)],
    ]
    tail = ~whole & (from_v > 0)
    starts.append(1 - from_v[tail])
    ends.append(np.ones(tail.sum()))
    edges.append(idx[tail])
    labels.append(reach.source[network.v][tail])
    s = reach.sources
    on = np.flatnonzero(s.edge >= 0)
    if len(on):
        left = np.maximum(budget_minutes - reach.source_minutes[on], 0) / cost[s.edge[on]]
        ok = left > 0
        on, left = on[ok], left[ok]
        starts.append(np.clip(s.fraction[on] - left, 0, 1))
        ends.append(np.clip(s.fraction[on] + left, 0, 1))
        edges.append(s.edge[on])
        labels.append(on)
    e = np.concatenate(edges).astype(np.intp)
    t0, t1 = np.concatenate(starts), np.concatenate(ends)
    ab = network.b[e] - network.a[e]
    p0 = network.a[e] + t0[:, None] * ab
    p1 = network.a[e] + t1[:, None] * ab
    lines = shapely.linestrings(np.stack([p0, p1], axis=1)) if len(e) else np.zeros(0, object)
    return lines, np.concatenate(labels).astype(np.intp)


def to_wgs84(geoms: GeomArray, crs: pyproj.CRS) -> GeomArray:
    """Geometries in ``crs`` back to EPSG:4326."""
    return shapely.transform(geoms, _transformer(crs, WGS84), interleaved=False)


def keep_pieces_with(network: RoadNetwork, wanted: NDArray[np.bool_]) -> RoadNetwork:
    """Only the connected pieces of the network holding at least one ``wanted`` edge.

    E.g. fire lanes that touch no road add no route: the pieces made of lanes alone go.
    """
    if network.n_edges == 0:
        return network
    graph = csr_array(
        (np.ones(network.n_edges), (network.u, network.v)),
        shape=(network.n_nodes, network.n_nodes),
    )
    _, piece = connected_components(graph, directed=False)
    good = np.zeros(int(piece.max()) + 1, dtype=bool)
    good[piece[network.u[wanted]]] = True
    return network.subset(good[piece[network.u]])


def geodesic_m(crs: pyproj.CRS, p: FloatArray, q: FloatArray) -> FloatArray:
    """Metres on the spheroid between points given in ``crs`` (rows of x, y)."""
    if len(p) == 0:
        return np.zeros(0)
    back = _transformer(crs, WGS84)
    lon1, lat1 = back(p[:, 0], p[:, 1])
    lon2, lat2 = back(q[:, 0], q[:, 1])
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=float)


# -- building blocks ------------------------------------------------------------------------


def _no_cuts() -> FloatArray:
    """Cut records: rows of (segment, t along it, x, y)."""
    return np.zeros((0, 4))


def _crossing_cuts(
    a: FloatArray, b: FloatArray, segments: GeomArray, separated: NDArray[np.bool_]
) -> FloatArray:
    """Cuts where segments cross or touch one another (both segments cut at the same point).

    A segment of a grade-separated line (``separated``) is neither cut nor cuts another.

    Candidate pairs come from the index by bounding box only; whether they meet is worked out
    here in closed form (5x faster than asking GEOS ``intersects`` of each pair).
    """
    i, j = shapely.STRtree(segments).query(segments)
    keep = (i < j) & ~separated[i] & ~separated[j]
    i, j = i[keep], j[keep]
    r, s = b[i] - a[i], b[j] - a[j]
    qp = a[j] - a[i]
    len_r = np.hypot(*r.T)
    denom = _cross(r, s)
    parallel = np.abs(denom) <= 1e-12 * len_r * np.hypot(*s.T)
    safe = np.where(parallel, 1.0, denom)
    t = _cross(qp, s) / safe
    w = _cross(qp, r) / safe
    meet = ~parallel & (t >= -_EPS_T) & (t <= 1 + _EPS_T) & (w >= -_EPS_T) & (w <= 1 + _EPS_T)
    t, w = np.clip(t, 0, 1), np.clip(w, 0, 1)
    cross_point = a[i] + t[:, None] * r
    # a crossing at a segment's end is that end, bit for bit, so both sides snap alike
    for frac, start, stop in ((t, a[i], b[i]), (w, a[j], b[j])):
        cross_point = np.where((frac <= _EPS_T)[:, None], start, cross_point)
        cross_point = np.where((frac >= 1 - _EPS_T)[:, None], stop, cross_point)
    rows = [
        _cut_rows(i[meet], t[meet], cross_point[meet]),
        _cut_rows(j[meet], w[meet], cross_point[meet]),
    ]
    # collinear overlaps (parallel, and j's start on i's line): each is cut where the other ends
    collinear = parallel & (np.abs(_cross(qp, r)) <= _TOUCH_M * len_r)
    pi, pj = i[collinear], j[collinear]
    for seg, other in ((pi, pj), (pj, pi)):
        for end in (a[other], b[other]):
            rows.append(_cut_rows(seg, _along(a[seg], b[seg], end), end))
    return np.concatenate(rows)


def _junction_cuts(
    a: FloatArray,
    b: FloatArray,
    segments: GeomArray,
    seg_part: IntArray,
    coords: FloatArray,
    coord_part: IntArray,
    tolerance: float,
) -> tuple[FloatArray, NDArray[np.float64], IntArray]:
    """Join each line end to the nearest segment of another line within ``tolerance``.

    Returns the cuts on those segments and a connector edge (end → nearest point) with the
    part it belongs to (the line that ends there).
    """
    first = np.r_[True, coord_part[1:] != coord_part[:-1]]
    last = np.r_[coord_part[1:] != coord_part[:-1], True]
    ends = np.concatenate([coords[first], coords[last]])
    end_part = np.concatenate([coord_part[first], coord_part[last]])
    points = shapely.points(ends)
    pe, ps = shapely.STRtree(segments).query(points, predicate="dwithin", distance=tolerance)
    other = seg_part[ps] != end_part[pe]
    pe, ps = pe[other], ps[other]
    t = _along(a[ps], b[ps], ends[pe])
    foot = _at(a[ps], b[ps], t)
    gap = np.hypot(*(foot - ends[pe]).T)
    touching = gap <= _TOUCH_M
    foot[touching], gap[touching] = ends[pe][touching], 0.0
    order = np.lexsort((ps, gap, pe))
    pe, ps, t, foot, gap = pe[order], ps[order], t[order], foot[order], gap[order]
    nearest = np.r_[True, pe[1:] != pe[:-1]] if len(pe) else np.zeros(0, bool)
    pe, ps, t, foot, gap = pe[nearest], ps[nearest], t[nearest], foot[nearest], gap[nearest]
    cuts = _cut_rows(ps, t, foot)
    joined = gap > 0
    connectors = np.stack([ends[pe][joined], foot[joined]], axis=1)
    return cuts, connectors, end_part[pe][joined]


def _snap(points: FloatArray, grid_m: float) -> IntArray:
    """A node number for each point: points in the same ``grid_m`` cell share one."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.intp)
    cell = np.round(points / grid_m).astype(np.int64)
    cell -= cell.min(axis=0)
    key = cell[:, 0] * (int(cell[:, 1].max()) + 1) + cell[:, 1]
    _, node = np.unique(key, return_inverse=True)
    return np.asarray(node, dtype=np.intp).ravel()


def _spatial_order(geoms: GeomArray) -> IntArray:
    """Indices of ``geoms`` along a Hilbert curve over their extent (missing ones last)."""
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    key = np.full(len(geoms), np.iinfo(np.int64).max)
    if present.any():
        key[present] = gpd.GeoSeries(geoms[present]).hilbert_distance()
    return np.argsort(key, kind="stable")


def _cut_rows(seg: IntArray, t: FloatArray, point: FloatArray) -> FloatArray:
    inside = (t > _EPS_T) & (t < 1 - _EPS_T)
    return np.column_stack([seg[inside], t[inside], point[inside]])


def _cut(a: FloatArray, b: FloatArray, cuts: FloatArray) -> tuple[FloatArray, FloatArray, IntArray]:
    """Cut segments at the cut points: the pieces' ends and the segment each comes from.

    A cut point is used as given (not recomputed from ``t``), so two segments cut at a
    crossing end on exactly the same coordinates.
    """
    n = len(a)
    seg = np.concatenate([np.arange(n), np.arange(n), cuts[:, 0].astype(np.intp)])
    t = np.concatenate([np.zeros(n), np.ones(n), cuts[:, 1]])
    xy = np.concatenate([a, b, cuts[:, 2:4]])
    order = np.lexsort((t, seg))
    seg, xy = seg[order], xy[order]
    same = seg[1:] == seg[:-1]
    return xy[:-1][same], xy[1:][same], seg[:-1][same]


def _same_edge_pairs(target_edge: IntArray, source_edge: IntArray) -> tuple[IntArray, IntArray]:
    """(target, source) index pairs attached to the same edge (edge -1 matches nothing)."""
    order = np.argsort(source_edge, kind="stable")
    ordered = source_edge[order]
    lo = np.searchsorted(ordered, target_edge, "left")
    hi = np.searchsorted(ordered, target_edge, "right")
    count = np.where(target_edge >= 0, hi - lo, 0)
    pair_t = np.repeat(np.arange(len(target_edge)), count)
    within = np.arange(len(pair_t)) - np.repeat(np.cumsum(count) - count, count)
    return pair_t, order[lo[pair_t] + within]


def _graph(
    tail: IntArray, head: IntArray, minutes: FloatArray, metres: FloatArray, n: int
) -> tuple[csr_array, NDArray[np.int64], FloatArray]:
    """A symmetric CSR graph of travel minutes (parallel edges: the fastest).

    Also the metres of each kept directed edge, by its key ``tail * n + head`` (sorted).
    """
    u = np.concatenate([tail, head])
    v = np.concatenate([head, tail])
    w = np.maximum(np.concatenate([minutes, minutes]), _MIN_WEIGHT)
    m = np.concatenate([metres, metres])
    key = u.astype(np.int64) * n + v
    order = np.lexsort((w, key))
    key, u, v, w, m = key[order], u[order], v[order], w[order], m[order]
    first = np.r_[True, key[1:] != key[:-1]]
    key, u, v, w, m = key[first], u[first], v[first], w[first], m[first]
    return csr_array((w, (u, v)), shape=(n, n)), key, m


def _path_metres(
    pred: IntArray, keys: NDArray[np.int64], key_metres: FloatArray, n: int
) -> FloatArray:
    """Metres along each node's shortest path, summed by pointer jumping (log depth steps)."""
    has = pred >= 0
    step = np.zeros(n)
    nodes = np.flatnonzero(has)
    step[nodes] = key_metres[np.searchsorted(keys, pred[nodes].astype(np.int64) * n + nodes)]
    total = step.copy()
    up = np.where(has, pred, -1)
    while (live := np.flatnonzero(up >= 0)).size:
        parent = up[live]
        total[live] = total[live] + total[parent]
        up[live] = up[parent]
    total[~has] = 0.0
    return total


def _along(a: FloatArray, b: FloatArray, p: FloatArray) -> FloatArray:
    """Where the foot of ``p`` falls along segment a→b, as a fraction in [0, 1]."""
    ab = b - a
    return np.clip(np.einsum("ij,ij->i", p - a, ab) / np.einsum("ij,ij->i", ab, ab), 0, 1)


def _at(a: FloatArray, b: FloatArray, t: FloatArray) -> FloatArray:
    """The point at fraction ``t`` of segment a→b (its ends exactly at 0 and 1)."""
    p = a + t[:, None] * (b - a)
    p = np.where((t <= 0)[:, None], a, p)
    return np.where((t >= 1)[:, None], b, p)


def _cross(p: FloatArray, q: FloatArray) -> FloatArray:
    return p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]


@lru_cache(maxsize=64)
def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> Callable[..., Any]:
    """A cached ``(x, y) -> (x, y)`` array transform, lon/lat order on both sides."""
    return pyproj.Transformer.from_crs(source, target, always_xy=True).transform
