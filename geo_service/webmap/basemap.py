"""The map's background, chosen in configuration (``GEORISK_BASEMAP``).

- ``none``: no background; the map works on any network.
- ``osm``: OpenStreetMap's tiles (needs internet).
- ``tianditu``: 天地图's vector map with its label layer; the key (``GEORISK_TIANDITU_TOKEN``)
  comes from configuration only. 天地图 draws in CGCS2000, which matches WGS 84 to well under a
  tile pixel, so georisk's overlays need no shift (unlike AMap or Baidu tiles in GCJ-02/BD-09).
- ``url``: any XYZ tile server, e.g. one on the intranet (``GEORISK_BASEMAP_URL``).
- any other value names an offline tile set in the tiles folder, served by georisk at
  ``/basemaps/<name>/{z}/{x}/{y}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import folium
from folium.map import Layer

from geo_service.settings import Settings
from geo_service.tiling.offline import tile_set as find_tile_set
from geo_service.tiling.offline import tile_sets

BUILT_IN = ("none", "osm", "tianditu", "url")
MAX_ZOOM = 19  # the map's deepest zoom; a tile set's last zoom is stretched beyond its own
OSM_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_CREDIT = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
TIANDITU_URL = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={token}"
)
TIANDITU_CREDIT = '&copy; <a href="https://www.tianditu.gov.cn/">天地图</a> GS(2024)0568号'

_TITLES = {"zh": "底图", "en": "Basemap"}


class BasemapError(ValueError):
    """A basemap setting that cannot be used; the message says which setting and why."""


@dataclass(frozen=True)
class Basemap:
    """Tile URL templates (drawn bottom to top), their credit and deepest native zoom."""

    name: str
    urls: tuple[str, ...]
    attribution: str
    min_zoom: int = 0
    max_zoom: int = MAX_ZOOM
    subdomains: str = "abc"


def resolve_basemap(settings: Settings, server_url: str = "") -> Basemap | None:
    """The basemap the settings choose; ``BasemapError`` naming the setting when unusable.

    ``server_url`` prefixes the URL of an offline tile set (empty: the page's own server).
    """
    choice = settings.basemap.strip()
    if choice == "none":
        return None
    if choice == "osm":
        return Basemap("osm", (OSM_URL,), OSM_CREDIT)
    if choice == "tianditu":
        if settings.tianditu_token is None or not settings.tianditu_token.get_secret_value():
            raise BasemapError(
                "basemap 'tianditu' needs a key: set GEORISK_TIANDITU_TOKEN (a 天地图 browser key)"
            )
        token = settings.tianditu_token.get_secret_value()
        urls = tuple(
            TIANDITU_URL.format(layer=name, token=token, s="{s}") for name in ("vec", "cva")
        )
        return Basemap("tianditu", urls, TIANDITU_CREDIT, max_zoom=18, subdomains="01234567")
    if choice == "url":
        if not settings.basemap_url or not all(k in settings.basemap_url for k in "zxy"):
            raise BasemapError(
                "basemap 'url' needs GEORISK_BASEMAP_URL, an XYZ template with {z}, {x} and {y}"
            )
        return Basemap("url", (settings.basemap_url,), settings.basemap_attribution or "basemap")
    tile_set = find_tile_set(settings.tiles_dir, choice)
    if tile_set is None:
        known = ", ".join([*BUILT_IN, *sorted(tile_sets(settings.tiles_dir))])
        raise BasemapError(
            f"basemap {choice!r}: no tile set {choice}.mbtiles or {choice}/ in "
            f"{settings.tiles_dir}; choose one of: {known}"
        )
    url = f"{server_url.rstrip('/')}/basemaps/{tile_set.name}/{{z}}/{{x}}/{{y}}"
    return Basemap(
        tile_set.name,
        (url,),
        tile_set.attribution or tile_set.name,
        min_zoom=tile_set.minzoom,
        max_zoom=tile_set.maxzoom,
    )


def basemap_layer(settings: Settings, *, server_url: str = "", lang: str = "zh") -> Layer | None:
    """The basemap as a base layer for a folium map, or None for ``basemap=none``."""
    basemap = resolve_basemap(settings, server_url)
    if basemap is None:
        return None
    tiles = [
        folium.TileLayer(
            tiles=url,
            attr=basemap.attribution,
            name=f"{_TITLES.get(lang, _TITLES['en'])}: {basemap.name}",
            max_zoom=MAX_ZOOM,
            min_native_zoom=basemap.min_zoom,
            max_native_zoom=basemap.max_zoom,
            subdomains=basemap.subdomains,
            overlay=False,
        )
        for url in basemap.urls
    ]
    if len(tiles) == 1:
        return tiles[0]
    # a map and its labels switch on and off together, as one base layer
    group = folium.FeatureGroup(name=tiles[0].layer_name, overlay=False)
    for tile in tiles:
        tile.control = False
        tile.add_to(group)
    return group
