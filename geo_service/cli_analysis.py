"""The analysis commands of ``georisk``: analyze, export, findings/measures status, rules.

Registered on the main group by ``geo_service.cli`` (``for command in ANALYSIS_COMMANDS:
cli.add_command(command)``). Heavy imports happen inside the commands, so ``georisk --help``
stays fast. The commands share the main group's context object (settings, verbosity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

if TYPE_CHECKING:
    from geo_service.cli import Context
    from geo_service.risk.exports import ListFilter

pass_obj = click.pass_obj


@click.command("analyze")
@click.option(
    "--rules",
    help="Comma-separated rule ids or kinds to run (default: every rule); see `georisk rules`.",
)
@pass_obj
def analyze_command(ctx: Context, rules: str | None) -> None:
    """Run the risk rules, grade every hazard, and update the two lists.

    Findings that still hold keep their status and history; findings of the rules run that are
    no longer found are kept and marked. Each run is recorded with the catalogue and data versions.
    """
    from geo_service.cli import _progress
    from geo_service.risk.engine import AnalysisError, analyze

    wanted = _names(rules)
    with ctx.open_store() as store, _progress(ctx, "Analysing") as step:
        try:
            run = analyze(store, rules=wanted, progress=step)
        except AnalysisError as exc:
            raise click.BadParameter(str(exc), param_hint="--rules") from None
    ctx.say(f"{run.run_id}: {run.findings} findings")
    for rule, count in run.by_rule.items():
        ctx.say(f"  {rule:32} {count:>6}")
    classes = ", ".join(f"{name} {run.by_class.get(name, 0)}" for name in _CLASSES)
    ctx.say(f"  by class: {classes}")
    if run.risk_surface is not None:
        ctx.say(f"  risk surface: {run.risk_surface}")


@click.command("export")
@click.argument("layer_id", metavar="LAYER")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["geojson", "gpkg", "csv", "ndjson", "xlsx"]),
    help="File format. Default: the output file's extension (.geojson, .gpkg, .csv, .ndjson, "
    ".xlsx), else xlsx for the findings and measures lists and geojson for a layer.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write.",
)
@click.option(
    "--filter",
    "cql",
    help="Only the features this CQL2 filter selects (text, or JSON when it starts with `{`), "
    'e.g. "major_hazard_grade <= 2".',
)
@click.option("--bbox", help="Only the features intersecting minlon,minlat,maxlon,maxlat.")
@click.option("--status", help="Lists: only these statuses (comma-separated).")
@click.option("--admin", help="Lists: only this admin area (a code; 330100 takes every 3301xx).")
@click.option("--overdue", is_flag=True, help="Lists: only entries past their deadline.")
@click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Lists: the day overdue is measured against (default: today).",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    help="Lists: language of the spreadsheet column titles and values (default: zh).",
)
@pass_obj
def export_command(
    ctx: Context,
    layer_id: str,
    fmt: str | None,
    output: Path,
    cql: str | None,
    bbox: str | None,
    status: str | None,
    admin: str | None,
    overdue: bool,
    today: Any,
    lang: str | None,
) -> None:
    """Write vector layer LAYER (or the features --filter and --bbox select) to a file.

    Any vector layer exports as GeoJSON (RFC 7946), GeoPackage, CSV or NDJSON, written in
    constant memory whatever its size. `findings` and `measures` export, by default, as the
    hidden-danger and measures lists, with the list options (--status, --admin, --overdue,
    --today, --lang): XLSX holds a sheet per list and the progress by area and by phase, CSV one
    row per entry, GeoJSON is for maps. With -f gpkg/ndjson, --filter or --bbox they export as
    layers.
    """
    list_options = {
        "--status": status,
        "--admin": admin,
        "--overdue": overdue or None,
        "--today": today,
        "--lang": lang,
    }
    given = [name for name, value in list_options.items() if value is not None]
    default = "xlsx" if layer_id in _LISTS else "geojson"
    fmt = fmt or _SUFFIX_FORMATS.get(output.suffix.lower(), default)
    if layer_id in _LISTS and fmt in ("geojson", "csv", "xlsx") and not (cql or bbox):
        from geo_service.risk.exports import ListFilter

        filters = ListFilter(
            status=tuple(_names(status) or ()),
            admin=admin,
            overdue=overdue,
            today=today.date() if today is not None else None,
        )
        _export_list(ctx, layer_id, fmt, output, filters, lang or "zh")
        return
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: only for the findings and measures lists "
            f"(not with --filter/--bbox, -f gpkg/ndjson, or layer {layer_id!r})"
        )
    if fmt == "xlsx":
        raise click.BadParameter(
            "xlsx: only the findings and measures lists export as XLSX; layers as geojson, "
            "gpkg, csv or ndjson",
            param_hint="-f",
        )
    _export_layer(ctx, layer_id, fmt, output, cql, bbox)


def _export_layer(
    ctx: Context,
    layer_id: str,
    fmt: str,
    output: Path,
    cql: str | None,
    bbox: str | None,
) -> None:
    from geo_service.api.downloads import ExportError, FormatName, export_layer

    with ctx.open_store() as store:
        try:
            count = export_layer(
                store, layer_id, output, cast(FormatName, fmt), filter=cql, bbox=bbox
            )
        except ExportError as exc:  # an unknown layer, a bad filter, a path not writable
            raise click.UsageError(str(exc)) from None
    ctx.say(f"{output}: {count} features of {layer_id}")


def _export_list(
    ctx: Context, what: str, fmt: str, output: Path, filters: ListFilter, lang: str
) -> None:
    from geo_service.risk.exports import Format, Lang, export_findings, export_measures

    write = export_findings if what == "findings" else export_measures
    with ctx.open_store() as store:
        try:
            count = write(store, output, cast(Format, fmt), filters, lang=cast(Lang, lang))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--status") from None
    ctx.say(f"{output}: {count} {what}")


@click.group("findings")
def findings_group() -> None:
    """Work on the hidden-danger list."""


@findings_group.command("status")
@click.argument("finding_id")
@click.argument("to")
@click.option("--by", required=True, help="Who makes the change (kept in the history).")
@click.option("--note", help="Why, or what was done.")
@pass_obj
def finding_status_command(
    ctx: Context, finding_id: str, to: str, by: str, note: str | None
) -> None:
    """Move finding FINDING_ID to status TO.

    identified → rectifying → rectified → verified; closed from any state before verified.
    """
    from geo_service.risk.lists import change_status

    _change(ctx, change_status, finding_id, to, by, note)


@click.group("measures")
def measures_group() -> None:
    """Work on the measures list."""


@measures_group.command("status")
@click.argument("measure_id")
@click.argument("to")
@click.option("--by", required=True, help="Who makes the change (kept in the history).")
@click.option("--note", help="Why, or what was done.")
@pass_obj
def measure_status_command(
    ctx: Context, measure_id: str, to: str, by: str, note: str | None
) -> None:
    """Move measure MEASURE_ID to status TO.

    planned → in_progress → done; closed from planned or in_progress.
    """
    from geo_service.risk.lists import change_measure_status

    _change(ctx, change_measure_status, measure_id, to, by, note)


@click.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@pass_obj
def rules_command(ctx: Context, as_json: bool) -> None:
    """List the catalogue's rules: layer, kind, basis confidence, parameters."""
    import geo_service.risk.rules  # noqa: F401  (registers the rule kinds)
    from geo_service.catalogue import load_catalogue
    from geo_service.risk.registry import RULE_KINDS

    catalogue = load_catalogue(ctx.settings.catalogue_dir)
    rows = [
        {
            "id": rule.id,
            "layer": layer.id,
            "kind": rule.kind,
            "implemented": rule.kind in RULE_KINDS,
            "confidence": rule.confidence,
            "plan_item": rule.plan_item,
            "deadline": rule.deadline,
            "title": rule.title.zh,
            "params": rule.params,
        }
        for layer, rule in catalogue.rules
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    for row in rows:
        missing = "" if row["implemented"] else "  (no code yet)"
        click.echo(
            f"{row['id']:30} {row['layer']:18} {row['kind']:22} [{row['confidence']}] "
            f"{row['title']}{missing}"
        )
        if ctx.verbosity >= 0 and row["params"]:
            params = json.dumps(row["params"], ensure_ascii=False, default=str)
            click.echo(f"    {params}")


ANALYSIS_COMMANDS: tuple[click.Command, ...] = (
    analyze_command,
    export_command,
    findings_group,
    measures_group,
    rules_command,
)
_CLASSES = ("red", "orange", "yellow", "blue")
_LISTS = ("findings", "measures")
_SUFFIX_FORMATS = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".geojsonl": "ndjson",
    ".jsonl": "ndjson",
    ".xlsx": "xlsx",
}


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _change(ctx: Context, change: Any, item_id: str, to: str, by: str, note: str | None) -> None:
    from geo_service.risk.lists import ListError

    with ctx.open_store() as store:
        try:
            rows = change(store, item_id, to, by=by, note=note)
        except ListError as exc:  # an unknown entry or a move the workflow refuses: exit 2
            raise click.UsageError(str(exc)) from None
    ctx.say(f"{item_id}: {rows.at[0, 'status']}")
