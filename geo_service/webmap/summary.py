"""The map's summary panel: findings by risk colour and the overdue ones, counted in the store.

Each number is one counting query (``exact_count``), so the panel costs the same however many
findings there are; no finding is read into memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pygeofilter import ast

from geo_service.catalogue import RISK_CLASSES
from geo_service.risk.lists import FINDINGS, UNFIXED
from geo_service.store import Store


@dataclass(frozen=True)
class FindingsSummary:
    """How many findings there are, by risk class, and how many are overdue."""

    by_class: dict[str, int]
    overdue: int

    @property
    def total(self) -> int:
        """All findings of the four classes."""
        return sum(self.by_class.values())


def findings_summary(store: Store, today: date | None = None) -> FindingsSummary:
    """Counts of the stored findings; overdue: still identified or rectifying past the deadline."""
    risk_class = ast.Attribute("risk_class")
    by_class: dict[str, int] = {
        name: _count(store, ast.Equal(risk_class, name)) for name in RISK_CLASSES
    }
    late = ast.And(
        ast.In(ast.Attribute("status"), list(UNFIXED), False),
        ast.LessThan(ast.Attribute("deadline"), today or date.today()),
    )
    return FindingsSummary(by_class, _count(store, late))


def _count(store: Store, node: ast.AstType) -> int:
    page = store.query(FINDINGS, filter=node, limit=1, properties=["id"], exact_count=True)
    return page.number_matched or 0
