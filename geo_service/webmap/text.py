"""The words of the map's interface in Chinese and English (the data's titles: the catalogue)."""

from __future__ import annotations

from typing import Any

from geo_service.api.deps import Lang

WORDS: dict[Lang, dict[str, Any]] = {
    "zh": {
        "title": "georisk 风险地图",
        "id": "编号",
        "yes": "是",
        "no": "否",
        "sep": "、",
        "shown_of": "前 {drawn:,} / 共 {total:,}",
        "tiled": "矢量瓦片",
        "legend": "图例",
        "risk_classes": "风险等级",
        "summary": "隐患概况",
        "overdue": "逾期未整改",
        "findings_total": "隐患合计",
        "risk_surface": "风险强度面",
        "heat": "人口热力",
        "heat_note": "人口热力为相对密度（最多 {points:,} 个点）",
        "tiled_note": "标有“矢量瓦片”的图层数据量大，按视野从服务器分块加载",
        "standalone_note": "离线单文件：缓冲区查询、风险强度面和矢量瓦片需要服务器"
        "（georisk serve 后打开 /map）",
        "search": "按名称搜索",
        "aggregate": "此处有 {count} 个要素，放大查看",
        "loading": "加载中…",
        "failed": "请求失败",
        "querying": "查询中…",
        "queryTitle": "缓冲区 {distance} 米内",
        "features": "要素合计",
        "people": "范围内人口",
        "distance": "距离（米）",
        "drawButtons": {
            "circle": "画圆：查询圆内的要素和人口",
            "polygon": "画多边形：查询多边形内的要素和人口",
            "marker": "放置点：查询点周边的要素和人口",
        },
    },
    "en": {
        "title": "georisk risk map",
        "id": "ID",
        "yes": "yes",
        "no": "no",
        "sep": ", ",
        "shown_of": "first {drawn:,} of {total:,}",
        "tiled": "vector tiles",
        "legend": "Legend",
        "risk_classes": "Risk classes",
        "summary": "Findings",
        "overdue": "Overdue",
        "findings_total": "All findings",
        "risk_surface": "Risk surface",
        "heat": "Population heat",
        "heat_note": "Population heat shows relative density (at most {points:,} points)",
        "tiled_note": "Layers marked “vector tiles” are large: drawn tile by tile from the server",
        "standalone_note": "Standalone file: the buffer query, the risk surface and vector tiles "
        "need the server (run georisk serve, open /map)",
        "search": "Search by name",
        "aggregate": "{count} features here: zoom in",
        "loading": "Loading…",
        "failed": "Request failed",
        "querying": "Querying…",
        "queryTitle": "Within {distance} m",
        "features": "Features in all",
        "people": "People inside",
        "distance": "Distance (m)",
        "drawButtons": {
            "circle": "Draw a circle: what lies inside, and how many people",
            "polygon": "Draw a polygon: what lies inside, and how many people",
            "marker": "Place a point: what lies around it, and how many people",
        },
    },
}
LOCALES: dict[Lang, str] = {"zh": "zh-CN", "en": "en"}


def browser_words(lang: Lang) -> dict[str, Any]:
    """The words the browser script needs (``georisk.configure``)."""
    keys = ("id", "yes", "no", "sep", "search", "aggregate", "loading", "failed", "querying")
    more = ("queryTitle", "features", "people", "distance", "drawButtons")
    return {key: WORDS[lang][key] for key in (*keys, *more)}
