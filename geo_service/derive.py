"""Derivations: fields the catalogue says to fill from other fields when a file leaves them empty.

A layer declares ``derivations`` (kind + parameters, with basis and confidence) and points a field
at one with ``derive``; the kinds are implemented here, the numbers live in the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_service.catalogue import Layer

Derivation = Callable[[gpd.GeoDataFrame, dict[str, Any]], pd.Series]


def apply_derivations(layer: Layer, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill every derived field that is empty, leaving given values as they are."""
    for spec in layer.fields:
        if spec.derive is None or spec.name not in frame:
            continue
        params = layer.derivations[spec.derive]
        derived = DERIVATIONS[params["kind"]](frame, params)
        frame[spec.name] = frame[spec.name].fillna(derived.astype(frame[spec.name].dtype))
    return frame


def tailings_grade(frame: gpd.GeoDataFrame, params: dict[str, Any]) -> pd.Series:
    """Grade (1 largest – 5) from total capacity and dam height, combined as the rules say.

    Each measure gives a grade from its table of lower bounds; if the two differ by one the
    higher (more severe, smaller number) wins, if by more, the higher one minus one step.
    Capacity is in m³ in the layer and in 10⁴ m³ in the table.
    """
    capacity = frame["total_capacity_m3"].astype("Float64") / 1e4
    by_capacity = _grade_from_bounds(capacity, params["by_capacity_1e4m3"])
    by_height = _grade_from_bounds(frame["dam_height_m"].astype("Float64"), params["by_height_m"])
    severe = np.fmin(by_capacity, by_height)
    mild = np.fmax(by_capacity, by_height)
    combined = np.where(mild - severe <= 1, severe, severe + 1)
    # with one measure missing, the other alone decides; with both missing, no grade
    combined = np.where(np.isnan(by_capacity) | np.isnan(by_height), severe, combined)
    return pd.Series(combined, index=frame.index).astype("Float64").round().astype("Int64")


def _grade_from_bounds(values: pd.Series, bounds: dict[Any, float]) -> np.ndarray:
    """The most severe grade whose lower bound the value reaches (NaN where no value)."""
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    grades = np.full(len(numbers), np.nan)
    for grade, lower in sorted(((int(g), float(b)) for g, b in bounds.items()), reverse=True):
        grades = np.where(numbers >= lower, grade, grades)
    return np.where(np.isnan(numbers), np.nan, grades)


def plan_phase(frame: gpd.GeoDataFrame, params: dict[str, Any]) -> pd.Series:
    """The plan phase (its id) whose inclusive date range holds each row's ``deadline``.

    None where there is no deadline or it lies outside every phase.
    """
    deadlines = pd.to_datetime(frame["deadline"]).to_numpy(dtype="datetime64[D]")
    phases = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for phase in params["phases"]:
        start, end = np.datetime64(phase["start"], "D"), np.datetime64(phase["end"], "D")
        inside = (deadlines >= start) & (deadlines <= end)  # NaT compares False
        phases[inside] = str(phase["id"])
    return phases


DERIVATIONS: dict[str, Derivation] = {"tailings_grade": tailings_grade, "plan_phase": plan_phase}
