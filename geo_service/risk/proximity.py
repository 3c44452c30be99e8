"""Pairs of features closer than a distance that depends on both sides' classes.

The hot path of the proximity rules (e.g. protection targets inside a chemical plant's protective
distance, where the distance depends on the plant's hazard class and the target's category).
Geometries come in ONE metric CRS (the caller projects, zone by zone); distances are planar
metres in it, exact (no buffer polygons), and a pair exactly at its distance is inside.

- Point × point: one KD tree per class on each side and ``cKDTree.sparse_distance_matrix`` per
  (hazard class, target class) with that pair's distance, in threads (scipy releases the GIL):
  the pairs and their distances come out of C without a Python object per pair.
- Anything with a line or polygon: an STRtree on the smaller side, queried with ``dwithin`` at
  each query geometry's largest possible distance, then exact ``shapely.distance`` per candidate
  and the per-pair distance.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.spatial import cKDTree

# A pair exactly at its distance is inside. Coordinates that went metres → lon/lat → metres carry
# ~1e-9 m of round-off; this allowance keeps such a pair inside and is far below any survey error.
AT_DISTANCE_ALLOWANCE_M = 1e-6

# Fast tree builds; queries are as fast as on balanced trees for clustered points.
_TREE_OPTIONS = {"balanced_tree": False, "compact_nodes": False}


@dataclass(frozen=True)
class Pairs:
    """Pairs within their distance, compact (a million-target run makes tens of millions).

    ``hazard``, ``target``: positions into the two inputs; ``distance_m``; ``near``: within
    ``near_fraction`` of the limit (e.g. the red band). The limit of each pair is looked up
    (``threshold_m``) from the classes and the table rather than stored.
    """

    hazard: NDArray[np.int32]
    target: NDArray[np.int32]
    distance_m: NDArray[np.float64]
    near: NDArray[np.bool_]
    rules: _Band

    def __len__(self) -> int:
        return len(self.hazard)

    @property
    def threshold_m(self) -> NDArray[np.float64]:
        """The distance each pair was held to."""
        rules = self.rules
        return rules.distances[rules.hazard_class[self.hazard], rules.target_class[self.target]]

    @staticmethod
    def allocate(n: int, rules: _Band) -> Pairs:
        """Room for ``n`` pairs (filled by the caller)."""
        return Pairs(
            np.empty(n, dtype=np.int32),
            np.empty(n, dtype=np.int32),
            np.empty(n),
            np.empty(n, dtype=bool),
            rules,
        )

    @staticmethod
    def concat(parts: Sequence[Pairs], rules: _Band) -> Pairs:
        """The pairs of several parts, in order."""
        parts = [p for p in parts if len(p)]
        if len(parts) <= 1:
            return parts[0] if parts else Pairs.allocate(0, rules)
        return Pairs(
            np.concatenate([p.hazard for p in parts]),
            np.concatenate([p.target for p in parts]),
            np.concatenate([p.distance_m for p in parts]),
            np.concatenate([p.near for p in parts]),
            rules,
        )


@dataclass(frozen=True)
class _Band:
    """What decides a pair: the distance table, each side's classes, the near band."""

    distances: NDArray[np.float64]
    hazard_class: NDArray[np.intp]
    target_class: NDArray[np.intp]
    near_fraction: float

    def limits(self, fraction: float = 1.0) -> NDArray[np.float64]:
        return fraction * self.distances + AT_DISTANCE_ALLOWANCE_M


def pairs_within(
    hazards: NDArray[np.object_],
    hazard_class: NDArray[np.integer],
    targets: NDArray[np.object_],
    target_class: NDArray[np.integer],
    distances: NDArray[np.float64],
    *,
    near_fraction: float = 0.0,
    workers: int | None = None,
) -> Pairs:
    """Every (hazard, target) pair with ``distance <= distances[hazard_class, target_class]``.

    ``hazards`` and ``targets`` are shapely geometries in one metric CRS; a class of -1, a
    missing or empty geometry, or a NaN distance takes the feature or the class pair out. The
    distance is from the nearest point of each geometry (a polygon's boundary, 0 inside it).
    Pairs come point × point first (by hazard class, target class), then the rest (by hazard,
    target), in a deterministic order.
    """
    hazards = np.asarray(hazards, dtype=object)
    targets = np.asarray(targets, dtype=object)
    h_class: NDArray[np.intp] = np.asarray(hazard_class, dtype=np.intp)
    t_class: NDArray[np.intp] = np.asarray(target_class, dtype=np.intp)
    distances = np.asarray(distances, dtype=float)
    if distances.ndim != 2:
        raise ValueError(f"distances: a hazard class × target class table, not {distances.shape}")
    if max(len(hazards), len(targets)) >= 2**31:
        raise ValueError("pairs_within takes fewer than 2**31 features a side")
    h_type, t_type = shapely.get_type_id(hazards), shapely.get_type_id(targets)
    h_ok = _usable(hazards, h_type, h_class, np.asarray(np.isfinite(distances).any(axis=1)))
    t_ok = _usable(targets, t_type, t_class, np.asarray(np.isfinite(distances).any(axis=0)))
    h_point, t_point = h_type == 0, t_type == 0
    band = _Band(distances, h_class, t_class, float(near_fraction))
    points = _point_pairs(
        hazards,
        h_class,
        np.flatnonzero(h_ok & h_point),
        targets,
        t_class,
        np.flatnonzero(t_ok & t_point),
        band,
        workers or min(os.cpu_count() or 1, 8),
    )
    shapes = [
        _tree_pairs(
            hazards,
            h_class,
            np.flatnonzero(h_ok & ~h_point),
            targets,
            t_class,
            np.flatnonzero(t_ok),
            band,
        ),
        _tree_pairs(
            hazards,
            h_class,
            np.flatnonzero(h_ok & h_point),
            targets,
            t_class,
            np.flatnonzero(t_ok & ~t_point),
            band,
        ),
    ]
    return Pairs.concat([points, *shapes], band)


def _usable(
    geoms: NDArray[np.object_],
    type_id: NDArray[np.integer],
    classes: NDArray[np.intp],
    class_checked: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Features with a geometry and a class that has at least one distance.

    Empty points are left for ``_point_groups`` to find (checking a million points for
    emptiness costs more than the rare empty one).
    """
    if len(classes) != len(geoms):
        raise ValueError(f"{len(classes)} classes for {len(geoms)} geometries")
    known = (classes >= 0) & (classes < len(class_checked))
    checked = np.zeros(len(geoms), dtype=bool)
    checked[known] = class_checked[classes[known]]
    checked &= type_id >= 0  # a missing geometry has type -1
    shapes = checked & (type_id != 0)
    checked[shapes] = ~shapely.is_empty(geoms[shapes])
    return checked


def _point_groups(
    geoms: NDArray[np.object_], rows: NDArray[np.intp], classes: NDArray[np.intp]
) -> dict[int, tuple[NDArray[np.int32], NDArray[np.float64]]]:
    """The points at ``rows`` by class: their rows (int32) and x, y; empty points dropped."""
    if not len(rows):
        return {}
    xy = shapely.get_coordinates(geoms[rows])  # one coordinate a point, unless some are empty
    if len(xy) != len(rows):
        rows = rows[~shapely.is_empty(geoms[rows])]
        xy = shapely.get_coordinates(geoms[rows])
    by_class = classes[rows]
    small = by_class.astype(np.int16) if by_class.max(initial=0) < 2**15 else by_class
    order = np.argsort(small, kind="stable")  # a radix sort on 16-bit keys; rows keep their order
    values, starts = np.unique(by_class[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    return {
        int(v): (rows[order[s:e]].astype(np.int32), xy[order[s:e]])
        for v, s, e in zip(values, starts, bounds, strict=True)
    }


def _point_pairs(
    hazards: NDArray[np.object_],
    hazard_class: NDArray[np.intp],
    h_rows: NDArray[np.intp],
    targets: NDArray[np.object_],
    target_class: NDArray[np.intp],
    t_rows: NDArray[np.intp],
    band: _Band,
    workers: int,
) -> Pairs:
    """Point × point pairs: KD trees per class, one sparse distance matrix per class pair.

    The trees and the matrices are built in threads; the matrices are then copied once into
    compact arrays allocated for all of them (fresh memory is what costs most after the trees).
    """
    h_groups = _point_groups(hazards, h_rows, hazard_class)
    t_groups = _point_groups(targets, t_rows, target_class)
    limits, near_limits = band.limits(), band.limits(band.near_fraction)
    jobs = [
        (hc, tc)
        for hc in sorted(h_groups)
        for tc in sorted(t_groups)
        if np.isfinite(band.distances[hc, tc])
    ]
    if not jobs:
        return Pairs.allocate(0, band)
    # biggest first, so the threads finish together
    by_size = sorted(
        range(len(jobs)),
        key=lambda k: (
            -len(h_groups[jobs[k][0]][0])
            * len(t_groups[jobs[k][1]][0])
            * float(band.distances[jobs[k]]) ** 2
        ),
    )
    keys = [("h", c) for c in sorted({hc for hc, _ in jobs})]
    keys += [("t", c) for c in sorted({tc for _, tc in jobs})]

    def tree(key: tuple[str, int]) -> cKDTree:
        side, c = key
        return cKDTree((h_groups if side == "h" else t_groups)[c][1], **_TREE_OPTIONS)

    def matrix(k: int) -> NDArray[np.void]:
        hc, tc = jobs[k]
        found: NDArray[np.void] = trees[("h", hc)].sparse_distance_matrix(
            trees[("t", tc)], float(limits[hc, tc]), output_type="ndarray"
        )
        return found

    with ThreadPoolExecutor(max_workers=workers) as pool:
        trees = dict(zip(keys, pool.map(tree, keys), strict=True))
        found = dict(zip(by_size, pool.map(matrix, by_size), strict=True))
        starts = np.concatenate([[0], np.cumsum([len(found[k]) for k in range(len(jobs))])])
        out = Pairs.allocate(int(starts[-1]), band)

        def fill(k: int) -> None:
            hc, tc = jobs[k]
            part, span = found.pop(k), slice(int(starts[k]), int(starts[k + 1]))
            np.take(h_groups[hc][0], part["i"], out=out.hazard[span])
            np.take(t_groups[tc][0], part["j"], out=out.target[span])
            out.distance_m[span] = part["v"]
            np.less_equal(part["v"], near_limits[hc, tc], out=out.near[span])

        list(pool.map(fill, by_size))
    return out


def _tree_pairs(
    hazards: NDArray[np.object_],
    hazard_class: NDArray[np.intp],
    h_rows: NDArray[np.intp],
    targets: NDArray[np.object_],
    target_class: NDArray[np.intp],
    t_rows: NDArray[np.intp],
    band: _Band,
) -> Pairs:
    """Pairs where a side may be a line or polygon: STRtree on the smaller side, exact distance."""
    if not len(h_rows) or not len(t_rows):
        return Pairs.allocate(0, band)
    reachable = np.where(np.isfinite(band.distances), band.limits(), -np.inf)
    if len(h_rows) <= len(t_rows):
        reach = reachable[:, target_class[t_rows]].max(axis=0)  # farthest any hazard class reaches
        query, tree_side = shapely.STRtree(hazards[h_rows]).query(
            targets[t_rows], predicate="dwithin", distance=reach
        )
        h, t = h_rows[tree_side], t_rows[query]
    else:
        reach = reachable[hazard_class[h_rows], :].max(axis=1)
        query, tree_side = shapely.STRtree(targets[t_rows]).query(
            hazards[h_rows], predicate="dwithin", distance=reach
        )
        h, t = h_rows[query], t_rows[tree_side]
    order = np.lexsort((t, h))
    h, t = h[order], t[order]
    limit = band.distances[hazard_class[h], target_class[t]]
    dist = shapely.distance(hazards[h], targets[t])
    keep = np.isfinite(limit) & (dist <= limit + AT_DISTANCE_ALLOWANCE_M)
    h, t, dist, limit = h[keep], t[keep], dist[keep], limit[keep]
    near = dist <= band.near_fraction * limit + AT_DISTANCE_ALLOWANCE_M
    return Pairs(h.astype(np.int32), t.astype(np.int32), dist, near, band)
