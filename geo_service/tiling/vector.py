"""Mapbox Vector Tiles of a layer: what goes in a tile, and the in-process encoder.

Both stores follow the same rules (``TilePolicy``); PostGIS applies them in one SQL statement
(``ST_AsMVTGeom``/``ST_AsMVT``), every other store through ``encode_frame`` here (shapely and
mapbox-vector-tile). The rules:

- One MVT layer named as the catalogue layer, ``extent`` 4096, a ``buffer`` of 64 units.
- Properties: ``id`` and the layer's catalogue fields (or those asked for), never the second
  geometry fields. Dates are ``YYYY-MM-DD`` text, lists JSON array text; empty values are left out.
- Below ``detail_zoom`` lines and polygons are simplified to about a pixel (1/256 of the tile).
  A line or polygon whose bounds fit in one pixel, or that vanishes at the tile's resolution, is
  drawn as a point at the centre of its bounds, so nothing disappears from the map.
- A dense tile (more than ``max_features`` candidates) is thinned by aggregation, never truncated:
  its points (and pixel-sized features) are grouped on a grid of ``cell`` units; a cell holding
  one feature keeps it as it is, a cell holding several becomes one point at the cell centre
  whose ``count`` says how many features it stands for (and, for a layer classed by risk, whose
  ``risk_class`` is the most severe of them). The ``count`` of a tile's features therefore sums
  to the number of features in it (a feature without ``count`` stands for itself).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import shapely

from geo_service.catalogue import RISK_CLASSES, FieldSpec, Layer
from geo_service.tiling.grid import TileAddress

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
ENCODER_VERSION = "1"  # part of every ETag: bump when the tile rules change
COUNT = "count"
_CAN_ORIENT = hasattr(shapely, "orient_polygons")  # shapely >= 2.1

# most severe last: the aggregate of a cell takes the highest rank present
SEVERITY: dict[str, int] = {name: rank for rank, name in enumerate(reversed(RISK_CLASSES), start=1)}


Fetch = Callable[[list[str]], gpd.GeoDataFrame]


class UnknownProperty(ValueError):
    """A property name the layer does not have; the message lists the known ones."""


@dataclass(frozen=True)
class TilePolicy:
    """How tiles are cut and thinned (the same for every store)."""

    extent: int = 4096
    buffer: int = 64
    max_features: int = 4096
    cell: int = 64  # units: 64 × 64 cells of 4 pixels on a 256-pixel tile
    pixel: int = 16  # units: one pixel of a 256-pixel tile
    detail_zoom: int = 16

    def simplify(self, tile: TileAddress) -> bool:
        """Whether lines and polygons of ``tile`` are simplified (below ``detail_zoom``)."""
        return tile.z < self.detail_zoom


DEFAULT_POLICY = TilePolicy()


def tile_fields(layer: Layer, requested: Sequence[str] | None = None) -> list[FieldSpec]:
    """The catalogue fields a tile of ``layer`` carries: ``requested`` ones, or all of them.

    Second-geometry fields are never carried. Raises ``UnknownProperty`` naming a bad name.
    """
    usable = {spec.name: spec for spec in layer.fields if spec.type != "geometry"}
    if requested is None:
        return list(usable.values())
    unknown = [name for name in requested if name not in usable and name != "id"]
    if unknown:
        raise UnknownProperty(
            f"properties: unknown field(s) {', '.join(map(repr, unknown))} of layer {layer.id!r}; "
            f"known: id, {', '.join(usable)}"
        )
    return [usable[name] for name in dict.fromkeys(requested) if name != "id"]


def severity_field(layer: Layer) -> str | None:
    """The field an aggregate summarises by its most severe value: the layer's risk class."""
    name = layer.style.classify_by
    spec = layer.field_map.get(name) if name else None
    if spec is None or not spec.enum or not set(map(str, spec.enum)) <= set(RISK_CLASSES):
        return None
    return spec.name


def encode_frame(
    layer: Layer,
    frame: gpd.GeoDataFrame,
    tile: TileAddress,
    *,
    fields: Sequence[FieldSpec],
    policy: TilePolicy = DEFAULT_POLICY,
    fetch: Fetch | None = None,
) -> bytes:
    """The vector tile of ``frame`` (a canonical frame: the layer's features near the tile).

    ``frame`` may hold features outside the tile: only those reaching the buffered tile are
    drawn. With ``fetch``, ``frame`` needs only ``id``, the geometry and the risk class
    (``severity_field``): ``fetch(ids)`` gives the canonical rows of the features drawn alone,
    so a dense tile reads the properties of none of the features it aggregates. An empty tile
    is ``b""`` (a valid MVT with no layers).
    """
    geoms = frame.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    frame, geoms = frame[present], geoms[present]
    if not len(frame):
        return b""
    grid = tile.frame(policy.extent)
    geoms = shapely.transform(geoms, grid.to_grid)
    plan = _Plan(geoms, policy)
    features = _single_features(layer, frame, fields, plan, policy.simplify(tile), fetch)
    features += _aggregates(layer, frame, plan)
    if not features:
        return b""
    data: bytes = mapbox_vector_tile.encode(
        [{"name": layer.id, "features": features}],
        # polygons come wound and valid from _snap: the encoder need not check them again
        default_options={
            "extents": policy.extent,
            "y_coord_down": True,
            "check_winding_order": not _CAN_ORIENT,
        },
    )
    return data


def property_values(spec: FieldSpec, values: pd.Series) -> list[Any]:
    """A field's values as MVT values: text, whole number, number or boolean; None when empty."""
    if spec.type == "date":
        stamps = pd.to_datetime(values)
        return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in stamps]
    if spec.type == "list":
        return [_json_list(v) if isinstance(v, (list, tuple, np.ndarray)) else None for v in values]
    out: list[Any] = list(cast(Any, values).to_numpy(dtype=object, na_value=None))
    if spec.type == "integer":
        return [None if v is None else int(v) for v in out]
    if spec.type == "number":
        return [None if v is None or v != v else float(v) for v in out]
    if spec.type == "boolean":
        return [None if v is None else bool(v) for v in out]
    return [None if v is None else str(v) for v in out]


# -- the plan: which feature is drawn how ---------------------------------------------------


class _Plan:
    """Per feature: drawn alone (and as what) or folded into a cell aggregate."""

    def __init__(self, geoms: np.ndarray, policy: TilePolicy) -> None:
        """Place ``geoms`` (in tile units) by ``policy``."""
        self.geoms = geoms
        self.policy = policy
        low = -float(policy.buffer)
        high = float(policy.extent + policy.buffer)
        self.clip_box = shapely.box(low, low, high, high)
        bounds = shapely.bounds(geoms)
        self.centres = np.column_stack(
            ((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2)
        )
        width, height = bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]
        self.is_point = shapely.get_type_id(geoms) == 0
        is_points = np.isin(shapely.get_type_id(geoms), (0, 4))
        self.speck = ~is_points & (width <= policy.pixel) & (height <= policy.pixel)
        dense = len(geoms) > policy.max_features
        self.grouped = dense & (is_points | self.speck)
        self.cells = cells = np.floor(self.centres / policy.cell).astype(np.int64)
        members = np.zeros(len(geoms), dtype=np.int64)
        if self.grouped.any():
            _, inverse, counts = np.unique(
                cells[self.grouped], axis=0, return_inverse=True, return_counts=True
            )
            members[self.grouped] = counts[inverse.ravel()]
        self.members = members
        self.single = ~self.grouped | (members == 1)


def _single_features(
    layer: Layer,
    frame: gpd.GeoDataFrame,
    fields: Sequence[FieldSpec],
    plan: _Plan,
    simplify: bool,
    fetch: Fetch | None,
) -> list[dict[str, Any]]:
    rows = np.flatnonzero(plan.single)
    if not len(rows):
        return []
    geoms = plan.geoms[rows]
    centres = shapely.points(plan.centres[rows])
    speck = plan.speck[rows]
    drawn = np.where(speck, centres, geoms)
    shaped = ~plan.is_point[rows] & ~speck  # lines, polygons, multi-points: clipped and snapped
    if shaped.any():
        shapes = shapely.intersection(geoms[shaped], plan.clip_box)
        if simplify:
            shapes = shapely.simplify(shapes, plan.policy.pixel, preserve_topology=True)
        shapes = _snap(shapes)
        # vanished at this resolution though really in the tile: its centre stands for it
        vanished = shapely.is_empty(shapes) & shapely.intersects(geoms[shaped], plan.clip_box)
        shapes[vanished] = centres[shaped][vanished]
        drawn[shaped] = shapes
    keep = ~shapely.is_empty(drawn) & shapely.intersects(drawn, plan.clip_box)
    subset = frame.iloc[rows]
    if fetch is not None:  # the properties of the features drawn alone, read now
        ids = subset["id"].astype(str)
        subset = fetch(ids.tolist()).set_index("id", drop=False).reindex(ids)
        keep &= subset["id"].notna().to_numpy()  # removed meanwhile: not drawn
    columns = {"id": subset["id"].astype(str).tolist()}
    for spec in fields:
        columns[spec.name] = property_values(spec, subset[spec.name])
    features = []
    for i in np.flatnonzero(keep):
        properties = {name: values[i] for name, values in columns.items() if values[i] is not None}
        features.append({"geometry": drawn[i], "properties": properties})
    return features


def _aggregates(layer: Layer, frame: gpd.GeoDataFrame, plan: _Plan) -> list[dict[str, Any]]:
    folded = plan.grouped & (plan.members > 1)
    if not folded.any():
        return []
    rows = np.flatnonzero(folded)
    cells, inverse, counts = np.unique(
        plan.cells[rows], axis=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel()
    worst: list[str | None] = [None] * len(cells)
    field = severity_field(layer)
    if field is not None:
        ranks = np.array([SEVERITY.get(str(v), 0) for v in frame[field].to_numpy()[rows]])
        best = np.zeros(len(cells), dtype=np.int64)
        np.maximum.at(best, inverse, ranks)
        names = {rank: name for name, rank in SEVERITY.items()}
        worst = [names.get(int(rank)) for rank in best]
    centres = (cells + 0.5) * plan.policy.cell
    low = -plan.policy.buffer
    high = plan.policy.extent + plan.policy.buffer
    features = []
    for (cx, cy), count, severest in zip(centres, counts, worst, strict=True):
        if not (low <= cx <= high and low <= cy <= high):
            continue
        properties: dict[str, Any] = {COUNT: int(count)}
        if severest is not None and field is not None:
            properties[field] = severest
        features.append({"geometry": shapely.Point(cx, cy), "properties": properties})
    return features


def _snap(shapes: np.ndarray) -> np.ndarray:
    """Geometries on the integer grid, valid, polygons wound as MVT asks; collapsed ones empty.

    A polygon that snaps to no area, or a line that snaps to no length, becomes empty.
    """
    shapes = shapely.transform(shapes, np.round)
    invalid = ~shapely.is_valid(shapes)
    if invalid.any():  # few: rounding made a ring touch itself, or collapse
        shapes[invalid] = shapely.set_precision(shapes[invalid], 1.0)
    dimension = shapely.get_dimensions(shapes)
    collapsed = ((dimension == 2) & (shapely.area(shapes) == 0)) | (
        (dimension == 1) & (shapely.length(shapes) == 0)
    )
    shapes[collapsed] = shapely.Point()
    if not _CAN_ORIENT:  # shapely < 2.1: the encoder winds them
        return shapes
    # exterior rings counter-clockwise in y-down tile units: clockwise on screen, as MVT 2 asks
    return shapely.orient_polygons(shapes, exterior_cw=False)


def _json_list(value: Any) -> str:
    """A list as compact JSON text (as PostgreSQL's ``array_to_json`` writes it)."""
    return json.dumps([str(v) for v in value], ensure_ascii=False, separators=(",", ":"))
