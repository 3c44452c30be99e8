"""A map in one HTML file that opens from disk, with no server and no internet.

``standalone_map`` renders the page with every layer inline (``render_map(standalone=True)``)
and then writes each ``/static`` script and style into the file itself; images a style points to
(Leaflet's, leaflet-draw's, leaflet-measure's icons) become ``data:`` URIs. What needs georisk's
server (vector tiles, the risk surface's raster tiles, the buffer query) is left out of such a
file, and its legend says so.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from pathlib import Path

from geo_service.api.deps import Lang
from geo_service.assets import FETCH_HINT, STATIC_DIR
from geo_service.settings import Settings
from geo_service.store import Store
from geo_service.webmap.page import render_map

_SCRIPT = re.compile(r'<script src="/static/(?P<path>[^"]+)"></script>')
_STYLESHEET = re.compile(r'<link rel="stylesheet" href="/static/(?P<path>[^"]+)"\s*/?>')
_CSS_URL = re.compile(r"url\((?P<quote>['\"]?)(?P<target>[^'\")]+)(?P=quote)\)")


class StandaloneError(Exception):
    """A file the standalone map needs is missing; the message says how to get it."""


def standalone_map(
    store: Store, settings: Settings, lang: Lang = "zh", static_dir: Path | None = None
) -> str:
    """The whole map as one self-contained HTML document."""
    return inline_static(render_map(store, settings, lang, standalone=True), static_dir)


def inline_static(html: str, static_dir: Path | None = None) -> str:
    """``html`` with its ``/static`` scripts and styles written into it."""
    folder = static_dir or STATIC_DIR

    def script(match: re.Match[str]) -> str:
        code = _read(folder, match["path"]).decode("utf-8")
        # a script element ends at the first "</script", wherever it stands
        return "<script>" + code.replace("</script", "<\\/script") + "</script>"

    def stylesheet(match: re.Match[str]) -> str:
        path = folder / match["path"]
        css = _read(folder, match["path"]).decode("utf-8")
        return "<style>" + _embed_images(css, path.parent) + "</style>"

    return _STYLESHEET.sub(stylesheet, _SCRIPT.sub(script, html))


def _embed_images(css: str, folder: Path) -> str:
    """``url(relative)`` of files beside the style sheet as ``data:`` URIs."""

    def embed(match: re.Match[str]) -> str:
        target = match["target"]
        path = folder / target
        if target.startswith(("data:", "#", "/")) or not path.is_file():
            return match[0]
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'url("data:{kind};base64,{data}")'

    return _CSS_URL.sub(embed, css)


def _read(folder: Path, path: str) -> bytes:
    try:
        return (folder / path).read_bytes()
    except OSError:
        raise StandaloneError(f"{folder / path} is missing: {FETCH_HINT}") from None
