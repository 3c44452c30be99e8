"""The map page: every vector layer as a toggleable folium overlay, with no internet needed.

folium's own page loads Leaflet, jQuery, Bootstrap and Font Awesome from CDNs; this page loads
the same files from ``/static/vendor`` (fetched once by ``georisk assets fetch``). It has no
basemap, so it draws offline; features are inlined, at most ``MAX_FEATURES`` per layer (a later
version serves vector tiles instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import folium
import geopandas as gpd
from branca.element import CssLink, Figure, MacroElement
from jinja2 import Template

from geo_service.api.deps import Lang
from geo_service.api.geojson import bounds, feature_collection
from geo_service.assets import vendor_url
from geo_service.catalogue import Layer, Style
from geo_service.store import Store

MAX_FEATURES = 5_000
DECIMALS = 6  # ≈ 0.1 m
CHINA_CENTRE = (35.0, 105.0)
POINT_FILL_OPACITY = 0.8

# (folium's name, file under static/vendor). folium also links Bootstrap 3 glyphicons and a
# rotate stylesheet for rotated icons; neither is on npm nor used here, so they are left out.
VENDOR_JS = [
    ("leaflet", "leaflet/dist/leaflet.js"),
    ("jquery", "jquery/dist/jquery.min.js"),
    ("bootstrap", "bootstrap/dist/js/bootstrap.bundle.min.js"),
    ("awesome_markers", "leaflet.awesome-markers/dist/leaflet.awesome-markers.js"),
]
VENDOR_CSS = [
    ("leaflet_css", "leaflet/dist/leaflet.css"),
    ("bootstrap_css", "bootstrap/dist/css/bootstrap.min.css"),
    ("awesome_markers_font_css", "@fortawesome/fontawesome-free/css/all.min.css"),
    ("awesome_markers_css", "leaflet.awesome-markers/dist/leaflet.awesome-markers.css"),
]

_WORDS: dict[Lang, dict[str, str]] = {
    "zh": {"title": "georisk 风险地图", "id": "编号", "yes": "是", "no": "否", "sep": "、"},
    "en": {"title": "georisk risk map", "id": "ID", "yes": "yes", "no": "no", "sep": ", "},
}


@dataclass(frozen=True)
class MapLayer:
    """One overlay: a layer, the features drawn, and how many the layer holds in all."""

    layer: Layer
    frame: gpd.GeoDataFrame
    total: int


def read_map_layers(store: Store, limit: int | None = None) -> list[MapLayer]:
    """Every vector layer of the catalogue with at most ``limit`` (``MAX_FEATURES``) features."""
    limit = limit or MAX_FEATURES
    return [
        MapLayer(layer, store.read(layer.id, limit=limit), store.count(layer.id))
        for layer in store.catalogue.vector_layers
    ]


def render_map(layers: Sequence[MapLayer], lang: Lang = "zh") -> str:
    """The whole HTML page of a map drawing ``layers`` (ordered by their style's z-index)."""
    words = _WORDS[lang]
    figure = Figure(title=words["title"])
    figure.header.add_child(CssLink("/static/georisk.css"), name="georisk_css")
    fmap = folium.Map(location=CHINA_CENTRE, zoom_start=4, tiles=None, control_scale=True)
    fmap.add_to(figure)
    # instance lists: folium's add_js_link/add_css_link would otherwise change the class's
    fmap.default_js = [(name, vendor_url(path)) for name, path in VENDOR_JS]
    fmap.default_css = [(name, vendor_url(path)) for name, path in VENDOR_CSS]
    boxes = []
    for item in sorted(layers, key=lambda item: item.layer.style.z_index):
        _overlay(item, lang).add_to(fmap)
        box = bounds(item.frame)
        if box is not None:
            boxes.append(box)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if boxes:
        minx, miny = min(b[0] for b in boxes), min(b[1] for b in boxes)
        maxx, maxy = max(b[2] for b in boxes), max(b[3] for b in boxes)
        fmap.fit_bounds([[miny, minx], [maxy, maxx]], max_zoom=16)
    html: str = figure.render()
    return html


def _overlay(item: MapLayer, lang: Lang) -> folium.GeoJson:
    layer, style = item.layer, item.layer.style
    data = feature_collection(
        layer, item.frame, decimals=DECIMALS, drop_nulls=True, system_columns=False
    )
    drawn = len(data["features"])
    overlay = folium.GeoJson(
        data,
        name=_overlay_name(layer, drawn, item.total, lang),
        style_function=(lambda feature: _path_style(style, feature)) if drawn else None,
        marker=folium.CircleMarker(radius=style.radius, fill=True),
    )
    if drawn:
        labels = [
            ("id", _WORDS[lang]["id"]),
            *((f.name, getattr(f.title, lang)) for f in layer.fields),
        ]
        FieldPopup(getattr(layer.title, lang), labels, lang).add_to(overlay)
    return overlay


def _overlay_name(layer: Layer, drawn: int, total: int, lang: Lang) -> str:
    title = getattr(layer.title, lang)
    if drawn < total:
        shown = f"前 {drawn:,} / 共 {total:,}" if lang == "zh" else f"first {drawn:,} of {total:,}"
        return f"{title} ({shown})"
    return f"{title} ({total:,})"


def _path_style(style: Style, feature: dict[str, Any]) -> dict[str, Any]:
    """Leaflet path options for one feature, from the layer's style and its classifying field."""
    colour = style.color
    fill = style.fill_color or style.color
    if style.classify_by is not None:
        value = feature["properties"].get(style.classify_by)
        if value is not None and str(value) in style.classes:
            colour = fill = style.classes[str(value)]
    point = (feature.get("geometry") or {}).get("type") in ("Point", "MultiPoint")
    options: dict[str, Any] = {
        "color": colour,
        "fillColor": fill,
        # a faint dot is lost among others: points are filled at least POINT_FILL_OPACITY
        "fillOpacity": max(style.fill_opacity, POINT_FILL_OPACITY) if point else style.fill_opacity,
        "weight": style.weight,
    }
    if style.dash_array:
        options["dashArray"] = style.dash_array
    return options


class FieldPopup(MacroElement):
    """A popup listing a feature's fields by their catalogue titles; absent fields are skipped.

    Values are written as text (never as HTML), so imported data cannot inject markup.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.bindPopup(function(layer) {
            const labels = {{ this.labels|tojson }};
            const words = {{ this.words|tojson }};
            const values = Object.assign({id: layer.feature.id}, layer.feature.properties);
            const show = v => Array.isArray(v) ? v.join(words.sep)
                : typeof v === "boolean" ? (v ? words.yes : words.no)
                : typeof v === "number" ? v.toLocaleString({{ this.locale|tojson }})
                : String(v);
            const table = document.createElement("table");
            table.className = "georisk-popup";
            table.createCaption().textContent = {{ this.caption|tojson }};
            for (const [key, label] of labels) {
                if (values[key] === undefined || values[key] === null) continue;
                const row = table.insertRow();
                const th = document.createElement("th");
                th.textContent = label;
                row.appendChild(th);
                row.insertCell().textContent = show(values[key]);
            }
            return table;
        }, {maxWidth: 420});
        {% endmacro %}
        """
    )

    def __init__(self, caption: str, labels: list[tuple[str, str]], lang: Lang) -> None:
        super().__init__()
        self._name = "FieldPopup"
        self.caption = caption
        self.labels = labels
        self.words = _WORDS[lang]
        self.locale = "zh-CN" if lang == "zh" else "en"
