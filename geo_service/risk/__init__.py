"""The proximity risk engine: rule kinds in code, rule instances in the catalogue."""

from geo_service.risk.context import RuleContext
from geo_service.risk.model import FINDING_COLUMNS, RuleResult, findings_frame, no_findings
from geo_service.risk.registry import RULE_KINDS, rule_kind

__all__ = [
    "FINDING_COLUMNS",
    "RULE_KINDS",
    "RuleContext",
    "RuleResult",
    "findings_frame",
    "no_findings",
    "rule_kind",
]
