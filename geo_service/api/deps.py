"""What routes receive: the store, the catalogue and checked request parameters.

The lifespan (``geo_service.api.app``) puts the settings, store and catalogue on ``app.state``;
routes take them through the ``…Dep`` aliases below, never from globals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request

from geo_service.api.errors import BadRequest, LayerNotFound, NotFound
from geo_service.catalogue import Catalogue, Layer
from geo_service.settings import Settings
from geo_service.store import BBox, Store

Lang = Literal["zh", "en"]


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    """The store opened by the lifespan."""
    store: Store = request.app.state.store
    return store


def get_catalogue(request: Request) -> Catalogue:
    """The layer catalogue loaded by the lifespan."""
    catalogue: Catalogue = request.app.state.catalogue
    return catalogue


def get_static_dir(request: Request) -> FilePath:
    """The folder served under ``/static`` (front-end files in its ``vendor/``)."""
    static_dir: FilePath = request.app.state.static_dir
    return static_dir


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
StaticDirDep = Annotated[FilePath, Depends(get_static_dir)]


def get_layer(
    layer_id: Annotated[
        str, Path(description="Layer id from the catalogue, e.g. `chemical_plants`.")
    ],
    catalogue: CatalogueDep,
) -> Layer:
    """The catalogue layer named in the path; 404 naming it when unknown."""
    if layer_id not in catalogue:
        raise LayerNotFound(layer_id, list(catalogue.layers))
    return catalogue[layer_id]


def get_vector_layer(layer: Annotated[Layer, Depends(get_layer)]) -> Layer:
    """A layer that holds features; 404 for a raster layer, which has none."""
    if layer.kind != "vector":
        raise NotFound(f"layer {layer.id!r} is a raster layer: it holds no features")
    return layer


LayerDep = Annotated[Layer, Depends(get_layer)]
VectorLayerDep = Annotated[Layer, Depends(get_vector_layer)]
LangDep = Annotated[
    Lang, Query(description="Language of titles and labels: `zh` (Chinese) or `en` (English).")
]


@dataclass
class FeatureQuery:
    """Which features of a layer to return."""

    bbox: Annotated[
        str | None,
        Query(
            description="Only features intersecting this box: `minlon,minlat,maxlon,maxlat` "
            "in degrees (EPSG:4326), e.g. `116.2,39.8,116.5,40.0`.",
        ),
    ] = None
    limit: Annotated[
        int | None, Query(ge=1, description="At most this many features (ordered by id).")
    ] = None
    offset: Annotated[int, Query(ge=0, description="Skip this many features first.")] = 0

    @property
    def box(self) -> BBox | None:
        """``bbox`` parsed and checked; 400 naming the value when it is not a valid box."""
        return None if self.bbox is None else parse_bbox(self.bbox)


FeatureQueryDep = Annotated[FeatureQuery, Depends()]


def parse_bbox(text: str) -> BBox:
    """``minlon,minlat,maxlon,maxlat`` as four floats, checked for order and range."""
    parts = text.split(",")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise BadRequest(f"bbox {text!r}: expected four numbers minlon,minlat,maxlon,maxlat")
    minx, miny, maxx, maxy = values
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise BadRequest(
            f"bbox {text!r}: expected minlon <= maxlon within ±180 and minlat <= maxlat within ±90"
        )
    return minx, miny, maxx, maxy
