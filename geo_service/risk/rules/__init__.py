"""The rule kinds, one module per plan item; importing this package registers them all."""

from geo_service.risk.rules import chemical, fire, rail, roads, tailings

__all__ = ["chemical", "fire", "rail", "roads", "tailings"]
