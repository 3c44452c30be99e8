"""JSON routes: health, the layer list, and a layer's features as GeoJSON."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from geo_service import __version__
from geo_service.api.deps import CatalogueDep, FeatureQueryDep, StoreDep, VectorLayerDep
from geo_service.api.geojson import feature_collection
from geo_service.catalogue import GeometryType, Titles

router = APIRouter()


class GeoJSONResponse(JSONResponse):
    """JSON with the GeoJSON media type (RFC 7946)."""

    media_type = "application/geo+json"


class Health(BaseModel):
    """The service is up and its store answers."""

    status: Literal["ok"] = "ok"
    version: str
    catalogue_version: str
    data_version: str


class LayerInfo(BaseModel):
    """One layer of the catalogue and how much it holds."""

    id: str
    title: Titles
    kind: Literal["vector", "raster"]
    role: str
    geometry: list[GeometryType]
    count: int | None = Field(description="Features held (vector layers); null for a raster.")
    raster_stored: bool | None = Field(description="Whether a raster layer has its GeoTIFF.")
    geojson: str | None = Field(description="URL of the layer's features as GeoJSON.")


@router.get("/healthz", tags=["service"])
def healthz(store: StoreDep, catalogue: CatalogueDep) -> Health:
    """Liveness and readiness: answers 503 when the store cannot be read."""
    return Health(
        version=__version__, catalogue_version=catalogue.version, data_version=store.data_version()
    )


@router.get("/layers", tags=["layers"])
def list_layers(store: StoreDep, catalogue: CatalogueDep) -> list[LayerInfo]:
    """Every layer of the catalogue with its titles, kind, geometry and feature count."""
    counts = store.counts()
    return [
        LayerInfo(
            id=layer.id,
            title=layer.title,
            kind=layer.kind,
            role=layer.role,
            geometry=layer.geometry,
            count=counts.get(layer.id) if layer.kind == "vector" else None,
            raster_stored=store.raster_path(layer.id) is not None
            if layer.kind == "raster"
            else None,
            geojson=f"/layers/{layer.id}.geojson" if layer.kind == "vector" else None,
        )
        for layer in catalogue
    ]


@router.get(
    "/layers/{layer_id}.geojson",
    tags=["layers"],
    response_class=GeoJSONResponse,
    responses={404: {"description": "Unknown layer, or a raster layer"}},
)
def layer_geojson(
    layer: VectorLayerDep, store: StoreDep, query: FeatureQueryDep
) -> GeoJSONResponse:
    """The layer's features as an RFC 7946 FeatureCollection in EPSG:4326, ordered by id."""
    frame = store.read(layer.id, bbox=query.box, limit=query.limit, offset=query.offset)
    return GeoJSONResponse(feature_collection(layer, frame))
