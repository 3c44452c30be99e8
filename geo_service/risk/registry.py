"""Rule kinds by name: the code side of the rules the catalogue declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from geo_service.catalogue import Layer, Rule
from geo_service.risk.context import RuleContext
from geo_service.risk.model import RuleResult

RuleFunction = Callable[[RuleContext, Layer, Rule], RuleResult]


@dataclass(frozen=True)
class RuleKind:
    """A kind of rule, and the kinds whose results it reads (they run first)."""

    name: str
    run: RuleFunction
    after: tuple[str, ...] = ()


RULE_KINDS: dict[str, RuleKind] = {}


def rule_kind(name: str, *, after: tuple[str, ...] = ()) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule kind under the name the catalogue's ``kind:`` uses."""

    def register(function: RuleFunction) -> RuleFunction:
        if name in RULE_KINDS:
            raise ValueError(f"rule kind {name!r} registered twice")
        RULE_KINDS[name] = RuleKind(name, function, after)
        return function

    return register
