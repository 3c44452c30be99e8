"""The map's vector overlays: each layer written into the page, or drawn from vector tiles.

A layer is written into the page (inline GeoJSON) when it is small: at most
``map_inline_max_features`` features, and its GeoJSON fits what is left of the page's budget
``map_inline_max_bytes`` (smallest layers first, so most layers fit). Every other layer comes
as vector tiles from georisk's own tile endpoint (Leaflet.VectorGrid), so the page stays the
same size whatever the data size. A standalone file has no server to ask for tiles: there every
layer is inlined, at most ``map_standalone_max_features`` features each, and the layer control
says so ("first N of M").

Both kinds are styled in the browser by the same function (``georisk.pathStyle``) from the
catalogue style, and show the same popup of the catalogue fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import folium
from folium.elements import JSCSSMixin
from jinja2 import Template
from markupsafe import Markup

from geo_service.api.deps import Lang
from geo_service.api.geojson import feature_collection
from geo_service.catalogue import Layer
from geo_service.settings import Settings
from geo_service.store import Store
from geo_service.tiling.grid import TILE_MATRIX_SET_ID
from geo_service.tiling.vector import DEFAULT_POLICY
from geo_service.webmap.text import WORDS
from geo_service.webmap.vendor import VECTORGRID_JS, use_vendor

DECIMALS = 6  # ≈ 0.1 m


@dataclass(frozen=True)
class Overlay:
    """What the page shows of one layer: its features inline, or (``data`` None) its tiles."""

    layer: Layer
    total: int
    data: dict[str, Any] | None
    script: str = ""  # the inline GeoJSON as safe script text, counted against the budget

    @property
    def tiled(self) -> bool:
        """Whether the layer comes as vector tiles."""
        return self.data is None

    @property
    def drawn(self) -> int:
        """How many features the page itself holds."""
        return len(self.data["features"]) if self.data is not None else 0


def plan_overlays(store: Store, settings: Settings, *, standalone: bool = False) -> list[Overlay]:
    """Every vector layer of the catalogue, each inline or tiled (see the module docstring)."""
    budget = settings.map_inline_max_bytes
    totals = {layer.id: store.count(layer.id) for layer in store.catalogue.vector_layers}
    overlays = []
    for layer in sorted(store.catalogue.vector_layers, key=lambda item: totals[item.id]):
        total = totals[layer.id]
        if standalone:
            limit = settings.map_standalone_max_features
            overlays.append(_inline(store, layer, total, limit))
            continue
        if total <= settings.map_inline_max_features:
            overlay = _inline(store, layer, total, None)
            if len(overlay.script.encode()) <= budget:
                budget -= len(overlay.script.encode())
                overlays.append(overlay)
                continue
        overlays.append(Overlay(layer, total, None))
    return sorted(overlays, key=lambda item: item.layer.style.z_index)


def layer_spec(layer: Layer, lang: Lang) -> dict[str, Any]:
    """What the browser needs to style, label, search and tile ``layer``."""
    style = layer.style
    name_field = search_field(layer)
    carried = dict.fromkeys(["id", *(f for f in (style.classify_by, name_field) if f)])
    tiles = f"/collections/{layer.id}/tiles/{TILE_MATRIX_SET_ID}/{{z}}/{{y}}/{{x}}"
    return {
        "id": layer.id,
        "caption": getattr(layer.title, lang),
        "labels": [
            ("id", WORDS[lang]["id"]),
            *((f.name, getattr(f.title, lang)) for f in layer.fields if f.type != "geometry"),
        ],
        "style": {
            "color": style.color,
            "fillColor": style.fill_color,
            "fillOpacity": style.fill_opacity,
            "weight": style.weight,
            "radius": style.radius,
            "dashArray": style.dash_array,
            "classifyBy": style.classify_by,
            "classes": style.classes,
        },
        "zIndex": style.z_index,
        "nameField": name_field,
        # tiles carry only what styling and search need; a click fetches the rest
        "tiles": f"{tiles}?properties={','.join(carried)}",
        "maxZoom": DEFAULT_POLICY.detail_zoom,
    }


def search_field(layer: Layer) -> str | None:
    """The field a name search looks in: ``name``, else the first ``…_name`` text field."""
    names = [f.name for f in layer.fields if f.type == "string"]
    if "name" in names:
        return "name"
    return next((name for name in names if name.endswith("_name")), None)


def overlay_name(overlay: Overlay, lang: Lang) -> str:
    """The layer control's label: the title and how many features, honest about what is shown."""
    words = WORDS[lang]
    title = getattr(overlay.layer.title, lang)
    if overlay.tiled:
        return f"{title} ({overlay.total:,} · {words['tiled']})"
    if overlay.drawn < overlay.total:
        return f"{title} ({words['shown_of'].format(drawn=overlay.drawn, total=overlay.total)})"
    return f"{title} ({overlay.total:,})"


class InlineOverlay(folium.map.Layer):
    """A layer's features written into the page, styled and with popups by ``georisk.js``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = georisk.inlineOverlay(
            georisk.layerSpec({{ this.layer_id|tojson }}), {{ this.data }},
            {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, overlay: Overlay, lang: Lang) -> None:
        super().__init__(
            name=overlay_name(overlay, lang), overlay=True, show=overlay.layer.style.visible
        )
        self._name = "InlineOverlay"
        self.layer_id = overlay.layer.id
        self.data = Markup(overlay.script)


class TiledOverlay(JSCSSMixin, folium.map.Layer):
    """A layer drawn from georisk's vector tiles (Leaflet.VectorGrid, SVG), clickable."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = georisk.tiledOverlay(
            georisk.layerSpec({{ this.layer_id|tojson }}), {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, overlay: Overlay, lang: Lang) -> None:
        super().__init__(
            name=overlay_name(overlay, lang), overlay=True, show=overlay.layer.style.visible
        )
        self._name = "TiledOverlay"
        self.layer_id = overlay.layer.id
        use_vendor(self, js=VECTORGRID_JS)


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script>`` element (no ``</script>`` can end it early).

    Unlike Jinja's ``tojson`` it keeps Chinese as UTF-8 (3 bytes, not a 6-byte escape).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline(store: Store, layer: Layer, total: int, limit: int | None) -> Overlay:
    frame = store.read(layer.id, limit=limit)
    data = feature_collection(
        layer, frame, decimals=DECIMALS, drop_nulls=True, system_columns=False
    )
    return Overlay(layer, total, data, script_json(data))
