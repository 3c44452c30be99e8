"""Risk endpoints: findings per feature, the two lists, progress, status changes with API keys.

A thin layer over ``geo_service.risk.lists`` (the workflow, history, progress) and
``geo_service.risk.exports`` (the filters and the CSV/XLSX/GeoJSON lists):

- ``GET /collections/{id}/items/{featureId}/findings``: the findings where a feature is the
  hazard or the target.
- ``GET /lists/findings``, ``GET /lists/measures``: the two lists, filtered, as GeoJSON, CSV or
  XLSX (the same entries and files as ``georisk export``).
- ``GET /progress``: findings by status per admin area or plan phase.
- ``PATCH /collections/findings/items/{id}``, ``PATCH /collections/measures/items/{id}``: a
  status change in the style of OGC API – Features Part 4, by an analyst key or above, recorded
  in the history under the key's name, with ETag/``If-Match`` for optimistic locking.

Reads are open unless ``api_read_requires_key`` (then any key may read); writes need a key.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pygeofilter import ast
from starlette.background import BackgroundTask

from geo_service.api import ogc
from geo_service.api.auth import Caller, read_access, require_role
from geo_service.api.crs import CRS84
from geo_service.api.deps import Lang, LangDep, StoreDep
from geo_service.api.encode import features, page_document
from geo_service.api.errors import BadRequest, BadRequestRoute, Conflict, NotFound
from geo_service.api.etags import check_if_match, feature_etag
from geo_service.api.params import MEDIA_TYPES
from geo_service.api.routes_features import CollectionDep
from geo_service.catalogue import Layer
from geo_service.risk.exports import (
    ListFilter,
    ListFilterError,
    export_findings,
    export_measures,
    progress_table,
)
from geo_service.risk.lists import (
    FINDINGS,
    MEASURES,
    ListError,
    change_measure_status,
    change_status,
    progress,
)
from geo_service.store import Store

router = APIRouter(route_class=BadRequestRoute, tags=["risk"])

ListFormat = Literal["geojson", "json", "csv", "xlsx"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_LIST_MEDIA = {**MEDIA_TYPES, "xlsx": XLSX}
_EXPORTERS = {FINDINGS: export_findings, MEASURES: export_measures}
_CHANGES = {FINDINGS: change_status, MEASURES: change_measure_status}
_EDITABLE = ("status", "note")
_MAX_NOTE = 2000
# One change at a time per process: the If-Match check and the write it guards are one step.
_WRITES = threading.Lock()

ReadDep = Annotated[Caller | None, Depends(read_access)]
AnalystDep = Annotated[Caller, Depends(require_role("analyst"))]


# -- findings of a feature ------------------------------------------------------------------


@router.get(
    "/collections/{collection_id}/items/{feature_id:path}/findings",
    summary="Findings of a feature",
    response_model=None,
    responses={
        200: {"content": {MEDIA_TYPES["geojson"]: {}}},
        404: {"description": "No such collection or feature"},
    },
)
def feature_findings(
    request: Request,
    layer: CollectionDep,
    store: StoreDep,
    feature_id: Annotated[str, Path(description="The feature's id.")],
    _reader: ReadDep,
) -> Response:
    """The findings where the feature is the hazard or the target, as GeoJSON (by id)."""
    if not len(store.read(layer.id, ids=[feature_id])):
        raise NotFound(f"collection {layer.id!r} has no feature {feature_id!r}")

    def concerns(role: str) -> ast.And:
        return ast.And(
            ast.Equal(ast.Attribute(f"{role}_layer"), layer.id),
            ast.Equal(ast.Attribute(f"{role}_id"), feature_id),
        )

    findings = store.layer(FINDINGS)
    chunks = store.iter_query(FINDINGS, filter=ast.Or(concerns("hazard"), concerns("target")))
    found = [feature for chunk in chunks for feature in features(findings, chunk, CRS84, None)]
    links = [
        ogc.link(str(request.url), "self", "geojson"),
        ogc.link(ogc.url(request, f"/collections/{layer.id}/items/{feature_id}"), "up", "geojson"),
    ]
    document = page_document(found, len(found), links)
    return JSONResponse(document, media_type=MEDIA_TYPES["geojson"])


# -- the two lists --------------------------------------------------------------------------


@dataclass
class ListQuery:
    """Which entries of a list to return, and in which format."""

    admin: Annotated[
        str | None,
        Query(
            description="Admin area code, or a prefix: `330100` (a prefecture) matches every "
            "`3301xx`, a county code matches itself.",
        ),
    ] = None
    layer: Annotated[
        str | None,
        Query(
            description="Hazard layer, e.g. `chemical_plants` (for measures: the rules that "
            "layer declares).",
        ),
    ] = None
    status: Annotated[
        list[str] | None,
        Query(
            description="Only these statuses: repeat the parameter or separate by commas, e.g. "
            "`identified,rectifying` (findings) or `planned,in_progress` (measures).",
        ),
    ] = None
    overdue: Annotated[
        bool,
        Query(
            description="`true`: only entries past their deadline and not yet fixed "
            "(findings identified or rectifying, measures planned or in progress).",
        ),
    ] = False
    rule: Annotated[str | None, Query(description="Rule id, e.g. `plant_protective_distance`.")] = (
        None
    )
    risk_class: Annotated[
        list[str] | None,
        Query(
            description="Findings only: risk classes, repeated or comma-separated, e.g. "
            "`red,orange`.",
        ),
    ] = None
    f: Annotated[
        ListFormat,
        Query(
            description="`geojson` (default; `json` is the same document as application/json), "
            "`csv` (UTF-8 with BOM, titled columns) or `xlsx` (a workbook with the progress "
            "sheets); CSV and XLSX come as downloads.",
        ),
    ] = "geojson"

    def filters(self) -> ListFilter:
        """The filter these parameters describe."""
        return ListFilter(
            status=_values(self.status),
            admin=self.admin or None,
            overdue=self.overdue,
            rule=self.rule or None,
            layer=self.layer or None,
            risk_class=_values(self.risk_class),
        )


ListQueryDep = Annotated[ListQuery, Depends()]
_LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {_LIST_MEDIA[name]: {} for name in ("geojson", "json", "csv", "xlsx")}},
    400: {"description": "A bad filter value, named in the message"},
}


@router.get("/lists/findings", summary="The hidden-danger list", responses=_LIST_RESPONSES)
def findings_list(
    store: StoreDep, query: ListQueryDep, _reader: ReadDep, lang: LangDep = "zh"
) -> Response:
    """The findings (隐患清单) passing the filters, ordered by area, risk class and rule."""
    return _list_response(store, FINDINGS, query, lang)


@router.get("/lists/measures", summary="The measures list", responses=_LIST_RESPONSES)
def measures_list(
    store: StoreDep, query: ListQueryDep, _reader: ReadDep, lang: LangDep = "zh"
) -> Response:
    """The measures (制度措施清单) passing the filters, ordered by area and rule."""
    return _list_response(store, MEASURES, query, lang)


@router.get(
    "/progress",
    summary="Rectification progress",
    responses={200: {"content": {MEDIA_TYPES["json"]: {}, MEDIA_TYPES["csv"]: {}}}},
)
def progress_summary(
    store: StoreDep,
    _reader: ReadDep,
    by: Annotated[
        Literal["admin", "phase"],
        Query(description="Group the findings by admin area (`admin`) or plan phase (`phase`)."),
    ] = "admin",
    f: Annotated[
        Literal["json", "csv"],
        Query(description="`json` (machine names) or `csv` (titled columns, a download)."),
    ] = "json",
    lang: LangDep = "zh",
) -> Response:
    """Findings by status per group, with the open, overdue and percent rectified; a total."""
    if f == "csv":
        text = "\ufeff" + progress_table(store, by, lang).to_csv(index=False)
        name = f"progress-by-{by}-{date.today():%Y%m%d}.csv"
        return Response(text.encode(), media_type=MEDIA_TYPES["csv"], headers=_download(name))
    table = progress(store, by)
    # row by row as objects: a row of mixed columns would turn every count into a float
    rows = [
        _progress_row(table.index.name, key, row) for key, row in table.astype(object).iterrows()
    ]
    return JSONResponse({"by": by, "groups": rows[:-1], "total": rows[-1]})


# -- status changes -------------------------------------------------------------------------


def _patch_openapi(layer_id: str, statuses: str) -> dict[str, Any]:
    """The request body of a status change in OpenAPI: both forms, both media types."""
    change = {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "description": f"The new status: {statuses}."},
            "note": {
                "type": "string",
                "maxLength": _MAX_NOTE,
                "description": "Why, kept in the history.",
            },
        },
    }
    feature = {
        "type": "object",
        "required": ["properties"],
        "properties": {
            "type": {"enum": ["Feature"], "description": "`Feature`: a partial GeoJSON Feature."},
            "id": {"description": "The entry's id (ignored: the path names it)."},
            "properties": change,
        },
    }
    schema = {"oneOf": [change, feature]}
    example = {"status": statuses.split(" → ")[1], "note": "已下达整改通知"}
    content = {"schema": schema, "example": example}
    return {
        "requestBody": {
            "required": True,
            "description": f"`{{status, note?}}`, or a partial GeoJSON Feature with them in "
            f"`properties`: only these may change here ({layer_id}).",
            "content": {
                kind: content for kind in ("application/json", "application/merge-patch+json")
            },
        }
    }


_PATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPES["geojson"]: {}}, "description": "The changed feature"},
    400: {"description": "A field other than status/note, or a bad value, named"},
    401: {"description": "No API key, or one not configured"},
    403: {"description": "The key's role is below analyst"},
    404: {"description": "No such entry"},
    409: {"description": "The workflow does not allow this move; the allowed moves are named"},
    412: {"description": "If-Match names a version the entry no longer has"},
}
IdParam = Annotated[str, Path(description="The entry's id.")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The ETag read with the entry: the change is refused (412) if it changed "
        "since. `*` or none: no check.",
    ),
]


async def _body(request: Request) -> bytes:
    return await request.body()


BodyDep = Annotated[bytes, Depends(_body)]


def _status_change(layer_id: str, what: str) -> Callable[..., Response]:
    """The PATCH handler of one list."""

    def change(
        request: Request,
        store: StoreDep,
        caller: AnalystDep,
        feature_id: IdParam,
        body: BodyDep,
        if_match: IfMatch = None,
    ) -> Response:
        return _patch(request, store, layer_id, feature_id, body, caller, if_match)

    change.__name__ = f"change_{what}_status"
    change.__doc__ = (
        f"Move a {what} along its workflow; the history records who (the key's name) and why."
    )
    return change


for _layer_id, _what, _flow in (
    (FINDINGS, "finding", "identified → rectifying → rectified → verified, or closed"),
    (MEASURES, "measure", "planned → in_progress → done, or closed"),
):
    router.add_api_route(
        f"/collections/{_layer_id}/items/{{feature_id}}",
        _status_change(_layer_id, _what),
        methods=["PATCH"],
        summary=f"Change a {_what}'s status",
        response_model=None,
        responses=_PATCH_RESPONSES,
        openapi_extra=_patch_openapi(_layer_id, _flow),
    )


# -- helpers --------------------------------------------------------------------------------


def _list_response(store: Store, layer_id: str, query: ListQuery, lang: Lang) -> Response:
    """The list written by ``risk.exports`` to a temporary file, sent, then deleted."""
    folder = FilePath(tempfile.mkdtemp(prefix="georisk-list-"))
    fmt = "geojson" if query.f == "json" else query.f
    name = _file_name(layer_id, query, fmt)
    try:
        _EXPORTERS[layer_id](store, folder / name, fmt, query.filters(), lang=lang)
    except ListFilterError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BadRequest(str(exc)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    download = query.f in ("csv", "xlsx")
    return FileResponse(
        folder / name,
        media_type=_LIST_MEDIA[query.f],
        filename=name if download else None,
        content_disposition_type="attachment" if download else "inline",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _file_name(layer_id: str, query: ListQuery, fmt: str) -> str:
    """``findings-330102-overdue-20220101.xlsx``: the list, the main filters, the day."""
    parts = [layer_id, query.admin, query.layer, query.rule, "overdue" if query.overdue else None]
    safe = ["".join(c for c in p if c.isalnum() or c in "_-") for p in parts if p]
    return "-".join([*safe, f"{date.today():%Y%m%d}"]) + f".{fmt}"


def _patch(
    request: Request,
    store: Store,
    layer_id: str,
    item_id: str,
    body: bytes,
    caller: Caller,
    if_match: str | None,
) -> Response:
    """Check the change, then make it through ``risk.lists``; the feature as it is after."""
    layer = store.layer(layer_id)
    status, note = _change_asked(layer, body)
    with _WRITES:
        current = store.read(layer_id, ids=[item_id])
        if not len(current):
            raise NotFound(f"collection {layer_id!r} has no feature {item_id!r}")
        check_if_match(if_match, feature_etag(layer, current))
        try:
            changed = _CHANGES[layer_id](store, item_id, status, by=caller.name, note=note)
        except ListError as exc:  # the move the workflow forbids, named with the allowed ones
            raise Conflict(str(exc)) from None
    (feature,) = features(layer, changed, CRS84, None)
    here = ogc.url(request, f"/collections/{layer_id}/items/{item_id}")
    feature["links"] = [ogc.link(here, "self", "geojson")]
    headers = {"ETag": feature_etag(layer, changed), "Content-Location": here}
    return JSONResponse(feature, media_type=MEDIA_TYPES["geojson"], headers=headers)


def _change_asked(layer: Layer, body: bytes) -> tuple[str, str | None]:
    """``(status, note)`` from ``{status, note}`` or a partial Feature; 400 naming what is wrong."""
    try:
        patch = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body: not JSON ({exc})") from None
    if not isinstance(patch, dict):
        raise BadRequest("request body: expected a JSON object {status, note} or a Feature")
    if patch.get("type") == "Feature" or "properties" in patch:
        others = sorted(set(patch) - {"type", "id", "properties"})
        if others:
            raise BadRequest(f"{', '.join(others)}: cannot change here; only status and note")
        patch = patch.get("properties")
        if not isinstance(patch, dict):
            raise BadRequest("properties: expected an object with status (and note)")
    others = sorted(set(patch) - set(_EDITABLE))
    if others:
        raise BadRequest(
            f"{', '.join(others)}: cannot change here; a PATCH may change only status and note"
        )
    status, note = patch.get("status"), patch.get("note")
    allowed = [str(v) for v in layer.field_map["status"].enum or ()]
    if status not in allowed:
        raise BadRequest(f"status {status!r}: a {layer.id} status is one of: {', '.join(allowed)}")
    if note is not None and (not isinstance(note, str) or len(note) > _MAX_NOTE):
        raise BadRequest(f"note: expected text of at most {_MAX_NOTE} characters")
    return str(status), note or None


def _values(given: list[str] | None) -> tuple[str, ...]:
    """A repeatable, comma-separated parameter as its values."""
    return tuple(v.strip() for item in given or () for v in item.split(",") if v.strip())


def _progress_row(key_name: Any, key: Any, row: pd.Series) -> dict[str, Any]:
    values = {
        str(name): (None if pd.isna(value) else value.item() if hasattr(value, "item") else value)
        for name, value in row.items()
    }
    return {str(key_name): key or None, **values}


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}
