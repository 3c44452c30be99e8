"""Feature versions as ETags, and ``If-Match`` checked against them (optimistic locking).

A feature's ETag is a digest of its stored state (every property and the geometry, as the
GeoJSON in CRS84), so it changes with any change and is the same whichever format or CRS the
feature is read in: a client reads the feature, sends ``If-Match: <its ETag>`` with a change,
and is refused (412) when someone changed the feature in between.
"""

from __future__ import annotations

import hashlib
import json

import geopandas as gpd

from geo_service.api.crs import CRS84
from geo_service.api.encode import features
from geo_service.api.errors import PreconditionFailed
from geo_service.catalogue import Layer


def feature_etag(layer: Layer, row: gpd.GeoDataFrame) -> str:
    """The strong ETag of the one feature in ``row`` (a canonical frame of ``layer``)."""
    (feature,) = features(layer, row, CRS84, None)
    text = json.dumps(feature, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def check_if_match(if_match: str | None, current: str) -> None:
    """Nothing when ``If-Match`` is absent, ``*`` or names ``current``; else 412.

    Comparison is strong (RFC 9110): a weak tag (``W/"…"``) never matches.
    """
    if if_match is None or if_match.strip() == "*":
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if current not in tags:
        raise PreconditionFailed(
            f"If-Match {if_match!r}: the feature has changed since that version; read it again "
            "and repeat the change if it still applies"
        )
