"""Which front-end file each part of the map needs, all served by georisk from ``/static``.

folium and its plugins link their scripts and styles from CDNs; every element of this map is
pointed at the same files under ``/static/vendor`` instead (npm tarballs pinned in
``geo_service/assets.lock.json``, fetched by ``georisk assets fetch``). The map uses no
Bootstrap, jQuery or Font Awesome (folium's defaults), which keeps the page light.
"""

from __future__ import annotations

from collections.abc import Sequence

from folium.elements import JSCSSMixin

from geo_service.api.deps import Lang
from geo_service.assets import vendor_url

Files = list[tuple[str, str]]  # (folium's name for the file, path under static/vendor)

LEAFLET_JS: Files = [("leaflet", "leaflet/dist/leaflet.js")]
LEAFLET_CSS: Files = [("leaflet_css", "leaflet/dist/leaflet.css")]
VECTORGRID_JS: Files = [("vectorgrid", "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js")]
DRAW_JS: Files = [("leaflet.draw.js", "leaflet-draw/dist/leaflet.draw.js")]
DRAW_CSS: Files = [("leaflet.draw.css", "leaflet-draw/dist/leaflet.draw.css")]
HEAT_JS: Files = [("leaflet-heat.js", "leaflet.heat/dist/leaflet-heat.js")]
FULLSCREEN_JS: Files = [("Control.Fullscreen.js", "leaflet.fullscreen/Control.FullScreen.js")]
FULLSCREEN_CSS: Files = [("Control.FullScreen.css", "leaflet.fullscreen/Control.FullScreen.css")]
MEASURE_CSS: Files = [("leaflet_measure_css", "leaflet-measure/dist/leaflet-measure.css")]
_MEASURE_JS: dict[Lang, str] = {
    "zh": "leaflet-measure/dist/leaflet-measure.cn.js",
    "en": "leaflet-measure/dist/leaflet-measure.js",
}

# georisk's own files (committed, not vendor): the map's script and styles
GEORISK_JS = "/static/georisk-map.js"
GEORISK_CSS = ["/static/georisk.css", "/static/georisk-map.css"]


def measure_js(lang: Lang) -> Files:
    """leaflet-measure in the page's language (its builds are one per language)."""
    return [("leaflet_measure_js", _MEASURE_JS[lang])]


def use_vendor(
    element: JSCSSMixin, js: Sequence[tuple[str, str]] = (), css: Sequence[tuple[str, str]] = ()
) -> None:
    """Make ``element`` load ``js`` and ``css`` from the vendor folder instead of its defaults.

    Instance lists: assigning to the class's lists would change every later page.
    """
    element.default_js = [(name, vendor_url(path)) for name, path in js]
    element.default_css = [(name, vendor_url(path)) for name, path in css]


def map_files() -> list[str]:
    """Every vendor file the map page may load (``<package>/<file>``), to check they are there."""
    groups = [
        LEAFLET_JS,
        LEAFLET_CSS,
        VECTORGRID_JS,
        DRAW_JS,
        DRAW_CSS,
        HEAT_JS,
        FULLSCREEN_JS,
        FULLSCREEN_CSS,
        MEASURE_CSS,
        *(measure_js(lang) for lang in _MEASURE_JS),
    ]
    return [path for group in groups for _, path in group]
