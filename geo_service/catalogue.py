"""The layer catalogue: one YAML file per layer, read into typed, validated models.

A layer file declares what a layer holds (geometry, fields with type, unit, enum, bounds),
how it is drawn, and which risk rules apply to it with their thresholds, regulatory basis and
confidence. Code reads thresholds from here and never carries them as literals, so a province
can change a number by editing a file, and a new layer needs no code at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

FieldType = Literal["string", "integer", "number", "boolean", "date", "list", "geometry"]
GeometryType = Literal["Point", "LineString", "Polygon"]
Confidence = Literal["V", "S", "R"]
RiskClass = Literal["red", "orange", "yellow", "blue"]

RISK_CLASSES: tuple[RiskClass, ...] = ("red", "orange", "yellow", "blue")


class CatalogueError(Exception):
    """A layer file that cannot be read or does not describe a valid layer."""


class Titles(BaseModel):
    """A name in Chinese and in English."""

    model_config = ConfigDict(extra="forbid")

    zh: str
    en: str


class FieldSpec(BaseModel):
    """One attribute of a layer: its type and the values it may take."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: FieldType
    title: Titles
    description: str | None = None
    unit: str | None = None
    required: bool = False
    enum: list[Any] | None = None
    enum_titles: dict[str, Titles] | None = Field(
        default=None, description="How each enum value reads to a person (exports, the map)."
    )
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    items_enum: list[str] | None = Field(
        default=None, description="For a list field: the values each item may take."
    )
    geometry_types: list[GeometryType] | None = Field(
        default=None,
        description="For a geometry field (a second geometry, e.g. a pond's outline): the types it "
        "may hold.",
    )
    derive: str | None = Field(
        default=None,
        description="Name of a derivation (in the layer's `derivations`) filling the field when "
        "it is absent.",
    )
    computed: bool = Field(
        default=False, description="Written by the analysis, never read from an imported file."
    )

    @model_validator(mode="after")
    def _items_only_on_lists(self) -> FieldSpec:
        if self.items_enum is not None and self.type != "list":
            raise ValueError(f"field {self.name}: items_enum only applies to list fields")
        unknown = set(self.enum_titles or ()) - {str(v) for v in self.enum or ()}
        if unknown:
            raise ValueError(
                f"field {self.name}: enum_titles of values not in enum: {sorted(unknown)}"
            )
        if (self.type == "geometry") != (self.geometry_types is not None):
            raise ValueError(
                f"field {self.name}: a geometry field, and only one, has geometry_types"
            )
        return self


class Style(BaseModel):
    """How the layer is drawn on the map."""

    model_config = ConfigDict(extra="forbid")

    color: str = "#3388ff"
    fill_color: str | None = None
    fill_opacity: float = 0.3
    weight: float = 2
    radius: float = 6
    dash_array: str | None = None
    z_index: int = 0
    visible: bool = Field(
        default=True,
        description="Drawn when the map opens; false: listed in the layer control, switched off.",
    )
    classify_by: str | None = Field(
        default=None, description="Field whose value picks a colour from `classes`."
    )
    classes: dict[str, str] = Field(default_factory=dict)


class Rule(BaseModel):
    """One rule instance: a rule kind (implemented in code) with its thresholds and basis."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    title: Titles
    params: dict[str, Any] = Field(default_factory=dict)
    basis: str
    confidence: Confidence
    plan_item: str | None = None
    lead_department: str | None = None
    deadline: str | None = None
    note: str | None = None


class RasterSpec(BaseModel):
    """What a raster layer's cells mean."""

    model_config = ConfigDict(extra="forbid")

    unit: str
    description: str
    nodata: float | None = None


class Layer(BaseModel):
    """A layer of the catalogue, as declared in ``layers/<id>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: Titles
    description: str | None = None
    kind: Literal["vector", "raster"] = "vector"
    role: Literal["hazard", "exposure", "context", "result"] = "context"
    plan_item: str | None = None
    geometry: list[GeometryType] = Field(default_factory=list)
    id_field: str = "id"
    fields: list[FieldSpec] = Field(default_factory=list)
    style: Style = Field(default_factory=Style)
    rules: list[Rule] = Field(default_factory=list)
    derivations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grading: dict[str, Any] = Field(
        default_factory=dict,
        description="How the analysis scores the layer's hazard features (0-100) and classes them.",
    )
    raster: RasterSpec | None = None
    temporal_field: str | None = Field(
        default=None,
        description="The date field that `datetime` queries filter on; default: the first date "
        "field.",
    )
    category_field: str | None = Field(
        default=None,
        description="The field a buffer query's summary counts features by (e.g. a target's "
        "`category`, a hazard's `risk_class`); none: features are only counted.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Layer:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate fields: {sorted(dupes)}")
        reserved = {"id", "geometry", "source_crs"} & set(names)
        if reserved:
            raise ValueError(f"reserved field names: {sorted(reserved)}")
        if self.kind == "vector" and not self.geometry:
            raise ValueError("a vector layer needs at least one geometry type")
        if self.kind == "raster" and self.raster is None:
            raise ValueError("a raster layer needs a `raster` section")
        for f in self.fields:
            if f.derive is not None and f.derive not in self.derivations:
                raise ValueError(f"field {f.name}: unknown derivation {f.derive!r}")
        if self.temporal_field is not None and (
            self.temporal_field not in self.field_map
            or self.field_map[self.temporal_field].type != "date"
        ):
            raise ValueError(f"temporal_field {self.temporal_field!r} is not a date field")
        if self.category_field is not None and (
            self.category_field not in self.field_map
            or self.field_map[self.category_field].type not in ("string", "integer", "boolean")
        ):
            raise ValueError(
                f"category_field {self.category_field!r} is not a text, integer or boolean field"
            )
        rule_ids = [r.id for r in self.rules]
        if len(set(rule_ids)) != len(rule_ids):
            raise ValueError("duplicate rule ids")
        return self

    @cached_property
    def field_map(self) -> dict[str, FieldSpec]:
        """Fields by name."""
        return {f.name: f for f in self.fields}

    @property
    def date_field(self) -> FieldSpec | None:
        """The field ``datetime`` queries filter on: ``temporal_field``, else the first date."""
        if self.temporal_field is not None:
            return self.field_map[self.temporal_field]
        return next((f for f in self.fields if f.type == "date"), None)

    @property
    def importable(self) -> bool:
        """Whether files may be imported into the layer (results are written by the analysis)."""
        return self.role != "result"

    @property
    def input_fields(self) -> list[FieldSpec]:
        """Fields an imported file may carry (everything the analysis does not write)."""
        return [f for f in self.fields if not f.computed]

    def accepts(self, geom_type: str) -> bool:
        """Whether a geometry of ``geom_type`` (``Multi*`` included) belongs in this layer."""
        return geom_type.removeprefix("Multi") in self.geometry

    def rule(self, rule_id: str) -> Rule:
        """The rule with id ``rule_id``; KeyError when the layer has none."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


class Catalogue:
    """All layers, by id; ``version`` is a digest of the files, so results can name it."""

    def __init__(self, layers: list[Layer], version: str, source: Path) -> None:
        self.layers = {layer.id: layer for layer in layers}
        self.version = version
        self.source = source

    def __getitem__(self, layer_id: str) -> Layer:
        try:
            return self.layers[layer_id]
        except KeyError:
            known = ", ".join(sorted(self.layers))
            raise KeyError(f"unknown layer {layer_id!r}; known layers: {known}") from None

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self.layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def vector_layers(self) -> list[Layer]:
        """Layers holding features (not rasters)."""
        return [layer for layer in self if layer.kind == "vector"]

    @property
    def rules(self) -> list[tuple[Layer, Rule]]:
        """Every rule instance with the layer that declares it."""
        return [(layer, rule) for layer in self for rule in layer.rules]


def default_catalogue_dir() -> Path:
    """The shipped catalogue: inside an installed wheel, or ``layers/`` of a source checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_catalogue", package.parent / "layers"):
        if candidate.is_dir():
            return candidate
    raise CatalogueError(f"no layer catalogue found beside {package}")


def load_catalogue(directory: Path | None = None) -> Catalogue:
    """Read every ``*.yaml`` layer file of ``directory`` (default: the shipped catalogue)."""
    directory = directory or default_catalogue_dir()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogueError(f"{directory}: no layer files (*.yaml)")
    digest = hashlib.sha256()
    layers = []
    for path in files:
        text = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + text)
        layers.append(_read_layer(path, text))
    ids = [layer.id for layer in layers]
    for path, layer in zip(files, layers, strict=True):
        if path.stem != layer.id:
            raise CatalogueError(f"{path}: file name must be the layer id {layer.id!r}")
    if len(set(ids)) != len(ids):
        raise CatalogueError(f"{directory}: duplicate layer ids")
    return Catalogue(layers, digest.hexdigest()[:12], directory)


def _read_layer(path: Path, text: bytes) -> Layer:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Layer.model_validate(data)
    except ValueError as exc:
        raise CatalogueError(f"{path}: {exc}") from None
