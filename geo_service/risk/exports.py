"""The two lists as files: CSV and XLSX for planners, GeoJSON (RFC 7946) for maps.

Spreadsheets have one row per entry, columns titled from the catalogue's field titles (Chinese by
default, English with ``lang="en"``), enum values in words (``rectifying`` → 整改中), the history
flattened to one line per step, and the place of each finding as longitude/latitude. The XLSX
workbook holds a sheet per list and the progress by admin area and by plan phase, each with a
frozen, filterable header and fitted column widths. CSV is UTF-8 with a byte-order mark, so Excel
opens the Chinese right. GeoJSON keeps the machine names and values: history entries and evidence
as JSON objects, coordinates in WGS 84 with polygons wound counter-clockwise.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from geo_service.catalogue import FieldSpec, Layer
from geo_service.risk.lists import (
    FINDINGS,
    MEASURES,
    history_entries,
    progress,
)
from geo_service.risk.lists import _overdue_mask as _findings_overdue

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

    from geo_service.store import Store

Format = Literal["geojson", "csv", "xlsx"]
Lang = Literal["zh", "en"]
FORMATS: tuple[str, ...] = ("geojson", "csv", "xlsx")

_RISK_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
_MEASURE_UNFINISHED = ("planned", "in_progress")
_WORDS = {
    "zh": {
        "id": "编号",
        "lon": "经度",
        "lat": "纬度",
        "yes": "是",
        "no": "否",
        "name": "名称",
        "total": "合计",
        "open": "未销号",
        "overdue": "逾期",
        "percent_rectified": "整改率（%）",
        "none": "（未定）",
        "progress_admin": "整改进度（按行政区）",
        "progress_phase": "整改进度（按阶段）",
    },
    "en": {
        "id": "ID",
        "lon": "Longitude",
        "lat": "Latitude",
        "yes": "yes",
        "no": "no",
        "name": "Name",
        "total": "Total",
        "open": "Open",
        "overdue": "Overdue",
        "percent_rectified": "Rectified (%)",
        "none": "(none)",
        "progress_admin": "Progress by area",
        "progress_phase": "Progress by phase",
    },
}
_MAX_WIDTH, _MIN_WIDTH = 60, 6


@dataclass(frozen=True)
class ListFilter:
    """Which entries to export.

    By status, admin area (a code or its prefix), overdue, rule, hazard layer (for measures:
    the rules that layer declares) and risk class (findings only).
    """

    status: Sequence[str] = ()
    admin: str | None = None
    overdue: bool = False
    today: date | None = None
    rule: str | None = None
    layer: str | None = None
    risk_class: Sequence[str] = ()


class ListFilterError(ValueError):
    """A filter value the list cannot have; the message names the filter and the value."""


def export_findings(
    store: Store,
    path: Path,
    fmt: Format = "geojson",
    filters: ListFilter | None = None,
    *,
    lang: Lang = "zh",
) -> int:
    """Write the hidden-danger list to ``path``; returns how many findings it holds.

    XLSX also carries the measures list and the progress sheets.
    """
    return _export(store, FINDINGS, Path(path), fmt, filters or ListFilter(), lang)


def export_measures(
    store: Store,
    path: Path,
    fmt: Format = "geojson",
    filters: ListFilter | None = None,
    *,
    lang: Lang = "zh",
) -> int:
    """Write the measures list to ``path``; returns how many measures it holds.

    XLSX also carries the progress sheets.
    """
    return _export(store, MEASURES, Path(path), fmt, filters or ListFilter(), lang)


def select(store: Store, layer_id: str, filters: ListFilter) -> gpd.GeoDataFrame:
    """The entries of a list that pass ``filters``, in the order planners read them."""
    layer = store.layer(layer_id)
    _check_values(layer, "status", filters.status)
    _check_values(layer, "risk_class", filters.risk_class)
    rules = _rules(store, filters)
    frame = store.read(layer_id)
    keep = np.ones(len(frame), dtype=bool)
    if filters.status:
        keep &= frame["status"].isin(list(filters.status)).to_numpy()
    if filters.risk_class:
        keep &= frame["risk_class"].isin(list(filters.risk_class)).to_numpy()
    if filters.rule:
        keep &= frame["rule"].isin([filters.rule]).to_numpy()
    if filters.layer and layer_id == FINDINGS:
        keep &= frame["hazard_layer"].isin([filters.layer]).to_numpy()
    elif filters.layer:
        keep &= frame["rule"].isin(rules).to_numpy()
    if filters.admin:
        prefix = _admin_prefix(filters.admin)
        keep &= frame["admin_code"].fillna("").astype(str).str.startswith(prefix).to_numpy()
    if filters.overdue:
        keep &= _overdue(frame, layer_id, filters.today).to_numpy()
    chosen = frame[keep]
    if layer_id == FINDINGS:
        order = chosen.assign(
            _admin=chosen["admin_code"].fillna("~"),
            _risk=chosen["risk_class"].map(_RISK_ORDER).fillna(9),
        )
        keys = ["_admin", "_risk", "rule", "hazard_id", "id"]
    else:
        order = chosen.assign(_admin=chosen["admin_code"].fillna("~"))
        keys = ["_admin", "rule", "id"]
    order = order.sort_values(keys, kind="stable")
    return chosen.loc[order.index].reset_index(drop=True)


def table(layer: Layer, frame: gpd.GeoDataFrame, lang: Lang = "zh") -> pd.DataFrame:
    """A list as planners read it: titled columns, values in words, history one step a line."""
    words = _WORDS[lang]
    out = pd.DataFrame({words["id"]: frame["id"].to_numpy(dtype=object)})
    status = layer.field_map.get("status")
    for spec in layer.fields:
        out[_title(spec, lang)] = _readable(spec, frame[spec.name], lang, status)
    if layer.id == FINDINGS and len(frame):
        place = shapely.point_on_surface(frame.geometry.values)
        out[words["lon"]] = np.round(shapely.get_x(place), 6)
        out[words["lat"]] = np.round(shapely.get_y(place), 6)
    elif layer.id == FINDINGS:
        out[words["lon"]], out[words["lat"]] = [], []
    return out


def progress_table(store: Store, by: Literal["admin", "phase"], lang: Lang = "zh") -> pd.DataFrame:
    """``lists.progress`` with titled columns and words for the statuses and phases."""
    words = _WORDS[lang]
    layer = store.layer(FINDINGS)
    counts = progress(store, by)
    key_spec = layer.field_map["admin_code" if by == "admin" else "phase"]
    raw = counts.index.to_series()
    keys = _readable(key_spec, raw.where(raw != "", None), lang) if by == "phase" else list(raw)
    labels = [
        words["total"] if r == "total" else (k or words["none"])
        for r, k in zip(raw, keys, strict=True)
    ]
    out = pd.DataFrame({_title(key_spec, lang): labels})
    if "name" in counts:
        out[words["name"]] = counts["name"].to_numpy(dtype=object)
    status = layer.field_map["status"]
    for value in status.enum or ():
        out[_enum_word(status, str(value), lang)] = counts[str(value)].to_numpy()
    for column in ("total", "open", "overdue", "percent_rectified"):
        out[words[column]] = counts[column].to_numpy()
    return out


# -- writing -----------------------------------------------------------------------------------


def _export(
    store: Store, layer_id: str, path: Path, fmt: str, filters: ListFilter, lang: Lang
) -> int:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if lang not in _WORDS:
        raise ValueError(f"unknown language {lang!r}; use zh or en")
    layer = store.layer(layer_id)
    frame = select(store, layer_id, filters)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "geojson":
        _write_geojson(layer, frame, path)
    elif fmt == "csv":
        table(layer, frame, lang).to_csv(path, index=False, encoding="utf-8-sig")
    else:
        sheets = [(_sheet_name(layer, lang), table(layer, frame, lang))]
        if layer_id == FINDINGS:
            measures = store.layer(MEASURES)
            chosen = select(store, MEASURES, ListFilter(admin=filters.admin))
            sheets.append((_sheet_name(measures, lang), table(measures, chosen, lang)))
        words = _WORDS[lang]
        sheets.append((words["progress_admin"], progress_table(store, "admin", lang)))
        sheets.append((words["progress_phase"], progress_table(store, "phase", lang)))
        _write_workbook(sheets, path)
    return len(frame)


def _write_geojson(layer: Layer, frame: gpd.GeoDataFrame, path: Path) -> None:
    """RFC 7946: WGS 84 lon/lat, no ``crs`` member, exterior rings counter-clockwise."""
    geoms = shapely.set_precision(frame.geometry.values, 1e-7)  # ≈ 1 cm
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)  # after: rounding may turn rings
    features = []
    for row, geom in zip(frame.itertuples(index=False), geoms, strict=True):
        record = row._asdict()
        properties = {spec.name: _json_value(spec, record[spec.name]) for spec in layer.fields}
        features.append(
            {
                "type": "Feature",
                "id": record["id"],
                "geometry": None if geom is None else json.loads(shapely.to_geojson(geom)),
                "properties": properties,
            }
        )
    collection = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")


def _write_workbook(sheets: list[tuple[str, pd.DataFrame]], path: Path) -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, data in sheets:
            data.to_excel(writer, sheet_name=name, index=False)
            _style(writer.sheets[name], data)


def _style(sheet: Worksheet, data: pd.DataFrame) -> None:
    """A bold, frozen, filterable header; columns as wide as their text (within bounds)."""
    header_fill = PatternFill("solid", fgColor="DDE3EA")
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    sheet.freeze_panes = "A2"
    if len(data.columns):
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(data.columns))}{len(data) + 1}"
    for index, column in enumerate(data.columns, start=1):
        texts = [str(column), *(_cell_text(v) for v in data[column].tolist())]
        width = max(_display_width(line) for text in texts for line in text.splitlines() or [""])
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = min(max(width + 2, _MIN_WIDTH), _MAX_WIDTH)
        if any("\n" in text for text in texts[1:]):
            for cell in sheet[letter][1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")


# -- values ------------------------------------------------------------------------------------


def _readable(
    spec: FieldSpec, values: pd.Series, lang: Lang, status: FieldSpec | None = None
) -> list[Any]:
    """A field's values as a person reads them in a spreadsheet cell.

    ``status``: the layer's status field, whose words a history's steps use.
    """
    words = _WORDS[lang]
    out: list[Any] = []
    for value in values.tolist():
        if _missing(value):
            out.append(None)
        elif spec.name == "history":
            out.append("\n".join(_history_line(e, status, lang) for e in history_entries(value)))
        elif spec.type == "list":
            out.append("; ".join(_enum_word(spec, str(v), lang) for v in value))
        elif spec.type == "boolean":
            out.append(words["yes"] if value else words["no"])
        elif spec.type == "date":
            out.append(pd.Timestamp(value).date())
        elif spec.type == "integer":
            out.append(int(value))
        elif spec.type == "number":
            out.append(float(value))
        elif spec.type == "geometry":
            out.append(shapely.to_wkt(value, rounding_precision=7))
        else:
            out.append(_enum_word(spec, str(value), lang))
    return out


def _history_line(entry: dict[str, Any], status: FieldSpec | None, lang: Lang) -> str:
    """``2020-06-01 08:00 张三：整改中 → 已整改（note）``."""
    when = str(entry.get("at", ""))[:16].replace("T", " ")

    def word(value: Any) -> str:
        if value is None:
            return "—"
        return _enum_word(status, str(value), lang)

    step = f"{word(entry.get('from'))} → {word(entry.get('to'))}"
    note = entry.get("note")
    if lang == "zh":
        return f"{when} {entry.get('by', '')}：{step}" + (f"（{note}）" if note else "")
    return f"{when} {entry.get('by', '')}: {step}" + (f" ({note})" if note else "")


def _enum_word(spec: FieldSpec | None, value: str, lang: Lang) -> str:
    if spec is None or not spec.enum_titles or value not in spec.enum_titles:
        return value
    titles = spec.enum_titles[value]
    return titles.zh if lang == "zh" else titles.en


def _title(spec: FieldSpec, lang: Lang) -> str:
    if lang == "zh":
        return f"{spec.title.zh}（{spec.unit}）" if spec.unit else spec.title.zh
    return f"{spec.title.en} ({spec.unit})" if spec.unit else spec.title.en


def _json_value(spec: FieldSpec, value: Any) -> Any:
    if _missing(value):
        return None
    if spec.name == "history":
        return history_entries(value)
    if spec.name == "evidence":
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    if spec.type == "list":
        return [str(v) for v in value]
    if spec.type == "date":
        return pd.Timestamp(value).date().isoformat()
    if spec.type == "integer":
        return int(value)
    if spec.type == "number":
        return float(value)
    if spec.type == "boolean":
        return bool(value)
    if spec.type == "geometry":
        return json.loads(shapely.to_geojson(value))
    return value


def _check_values(layer: Layer, name: str, values: Sequence[str]) -> None:
    """``ListFilterError`` naming the values of ``values`` that the field ``name`` cannot hold."""
    if not values:
        return
    spec = layer.field_map.get(name)
    if spec is None:
        raise ListFilterError(f"{name} filters other lists; {layer.id} entries have no {name}")
    allowed = [str(v) for v in spec.enum or ()]
    wrong = sorted(set(values) - set(allowed))
    if wrong:
        raise ListFilterError(
            f"unknown {name} {', '.join(wrong)}; a {layer.id} {name} is one of: "
            f"{', '.join(allowed)}"
        )


def _rules(store: Store, filters: ListFilter) -> list[str]:
    """The rules the ``layer`` filter stands for; ``ListFilterError`` for an unknown rule/layer."""
    catalogue = store.catalogue
    known = [rule.id for _, rule in catalogue.rules]
    if filters.rule and filters.rule not in known:
        raise ListFilterError(f"unknown rule {filters.rule!r}; rules: {', '.join(sorted(known))}")
    if filters.layer and filters.layer not in catalogue:
        hazards = sorted({layer.id for layer, _ in catalogue.rules})
        raise ListFilterError(
            f"unknown layer {filters.layer!r}; layers with rules: {', '.join(hazards)}"
        )
    return [rule.id for layer, rule in catalogue.rules if layer.id == filters.layer]


def _overdue(frame: pd.DataFrame, layer_id: str, today: date | None) -> pd.Series:
    if layer_id == FINDINGS:
        return _findings_overdue(frame, today)
    day = np.datetime64(today or date.today(), "D")
    late = pd.to_datetime(frame["deadline"]).to_numpy(dtype="datetime64[D]") < day
    return pd.Series(late, index=frame.index) & frame["status"].isin(_MEASURE_UNFINISHED)


def _admin_prefix(code: str) -> str:
    """``330100`` (a prefecture) matches every ``3301xx``; a county code matches itself."""
    text = code.strip()
    while len(text) > 2 and text.endswith("00"):
        text = text[:-2]
    return text


def _sheet_name(layer: Layer, lang: Lang) -> str:
    name = layer.title.zh if lang == "zh" else layer.title.en
    for bad in "[]:*?/\\":
        name = name.replace(bad, " ")
    return name[:31]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and np.isnan(value)


def _cell_text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: wide (CJK) characters count two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
