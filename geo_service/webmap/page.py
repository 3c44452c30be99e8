"""The risk map page: every vector layer, the risk surface, population heat, and the tools.

``render_map`` builds the folium map that ``/map`` serves and that ``georisk map -o`` writes
(``standalone``: see ``geo_service.webmap.standalone``). No file comes from a CDN: every script
and style is one of georisk's own, under ``/static``.
"""

from __future__ import annotations

import folium
from branca.element import CssLink, Figure
from folium.plugins import Fullscreen, HeatMap, MeasureControl

from geo_service.api.deps import Lang
from geo_service.settings import Settings
from geo_service.store import BBox, Store
from geo_service.tiling.grid import TILE_MATRIX_SET_ID
from geo_service.webmap.basemap import basemap_layer
from geo_service.webmap.controls import (
    DrawQuery,
    PageConfig,
    SearchControl,
    legend,
    summary_panel,
)
from geo_service.webmap.heat import POPULATION, HeatPoint, heat_points
from geo_service.webmap.overlays import InlineOverlay, Overlay, TiledOverlay, plan_overlays
from geo_service.webmap.summary import findings_summary
from geo_service.webmap.text import WORDS
from geo_service.webmap.vendor import (
    FULLSCREEN_CSS,
    FULLSCREEN_JS,
    GEORISK_CSS,
    HEAT_JS,
    LEAFLET_CSS,
    LEAFLET_JS,
    MEASURE_CSS,
    measure_js,
    use_vendor,
)

CHINA_CENTRE = (35.0, 105.0)
RISK_SURFACE = "risk_surface"
RISK_SURFACE_OPACITY = 0.6


def render_map(
    store: Store, settings: Settings, lang: Lang = "zh", *, standalone: bool = False
) -> str:
    """The whole HTML page of the risk map, in ``lang``.

    ``standalone``: for a file opened with no server (every layer inline, capped; no raster
    tiles, vector tiles or buffer query, which the legend says). Otherwise the page is served by
    georisk and asks it for tiles and queries.
    """
    words = WORDS[lang]
    figure = Figure(title=words["title"])
    for number, href in enumerate(GEORISK_CSS):
        figure.header.add_child(CssLink(href), name=f"georisk_css_{number}")
    fmap = folium.Map(location=CHINA_CENTRE, zoom_start=4, tiles=None, control_scale=True)
    fmap.add_to(figure)
    use_vendor(fmap, js=LEAFLET_JS, css=LEAFLET_CSS)
    PageConfig(store.catalogue, lang, server=not standalone).add_to(fmap)
    basemap = None if standalone else basemap_layer(settings, lang=lang)
    if basemap is not None:  # a file opened with no server shows no background
        basemap.add_to(fmap)

    overlays = plan_overlays(store, settings, standalone=standalone)
    for overlay in overlays:
        (TiledOverlay if overlay.tiled else InlineOverlay)(overlay, lang).add_to(fmap)
    notes = []
    if not standalone and store.raster_path(RISK_SURFACE) is not None:
        _risk_surface(lang).add_to(fmap)
    population = store.raster_path(POPULATION)
    if population is not None:
        _heat(heat_points(population, settings.map_heat_max_points), lang).add_to(fmap)
        notes.append(words["heat_note"].format(points=settings.map_heat_max_points))
    if any(overlay.tiled for overlay in overlays):
        notes.append(words["tiled_note"])
    if standalone:
        notes.append(words["standalone_note"])

    folium.LayerControl(collapsed=False).add_to(fmap)
    _tools(fmap, lang, settings, standalone)
    legend(store.catalogue, overlays, lang, notes).add_to(fmap)
    summary_panel(store.catalogue, findings_summary(store), lang).add_to(fmap)
    box = _extent(store, overlays)
    if box is not None:
        fmap.fit_bounds([[box[1], box[0]], [box[3], box[2]]], max_zoom=16)
    html: str = figure.render()
    return html


def _risk_surface(lang: Lang) -> folium.TileLayer:
    """PNG map tiles of the risk surface, from georisk's raster tile endpoint."""
    return folium.TileLayer(
        tiles=f"/collections/{RISK_SURFACE}/map/tiles/{TILE_MATRIX_SET_ID}/{{z}}/{{y}}/{{x}}",
        attr="georisk",
        name=WORDS[lang]["risk_surface"],
        overlay=True,
        opacity=RISK_SURFACE_OPACITY,
        max_zoom=22,
    )


def _heat(points: list[HeatPoint], lang: Lang) -> HeatMap:
    # off at first: switched on, it would tint the risk colours beneath it
    layer = HeatMap(
        points, name=WORDS[lang]["heat"], radius=18, blur=15, min_opacity=0.3, show=False
    )
    use_vendor(layer, js=HEAT_JS)
    return layer


def _tools(fmap: folium.Map, lang: Lang, settings: Settings, standalone: bool) -> None:
    """Search, fullscreen, measure and (with a server) the buffer query by drawing."""
    SearchControl().add_to(fmap)
    if not standalone:
        DrawQuery(settings.map_marker_buffer_m).add_to(fmap)
    fullscreen = Fullscreen(position="topleft")
    use_vendor(fullscreen, js=FULLSCREEN_JS, css=FULLSCREEN_CSS)
    fullscreen.add_to(fmap)
    measure = MeasureControl(
        position="topleft",
        primary_length_unit="meters",
        secondary_length_unit="kilometers",
        primary_area_unit="sqmeters",
        secondary_area_unit="hectares",
    )
    use_vendor(measure, js=measure_js(lang), css=MEASURE_CSS)
    measure.add_to(fmap)


def _extent(store: Store, overlays: list[Overlay]) -> BBox | None:
    """The bounds of every layer together (each layer's extent is one cheap store call)."""
    boxes = [box for o in overlays if o.total and (box := store.extent(o.layer.id)) is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
