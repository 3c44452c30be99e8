"""The ``georisk`` command line.

Exit codes: 0 done, 1 the data has errors (nothing written), 2 the command was used wrongly,
3 something else failed (a store out of reach, a bug).
Errors print as one line; ``-v`` adds the traceback and debug logging.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from geo_service.assets import assets_command
from geo_service.cli_analysis import ANALYSIS_COMMANDS, analyze_command
from geo_service.cli_keys import keys_command
from geo_service.cli_query import query_group
from geo_service.settings import Settings
from geo_service.tiles_build import tiles_command
from geo_service.webmap.command import map_command

if TYPE_CHECKING:
    from geo_service.catalogue import Layer
    from geo_service.store import Store

EXIT_DATA_ERRORS = 1
EXIT_USAGE = 2
_MAX_LISTED_PROBLEMS = 200

log = logging.getLogger("georisk")


class Context:
    """What every command shares: verbosity and the settings (store opened on demand)."""

    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity
        self.settings = Settings()

    def open_store(self) -> Store:
        """The configured store (imported here: the CLI starts without geopandas)."""
        from geo_service.store import open_store

        return open_store(self.settings)

    def say(self, message: str) -> None:
        """Print unless -q."""
        if self.verbosity >= 0:
            click.echo(message)


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="georisk")
@click.option("-v", "--verbose", count=True, help="More output; -v shows tracebacks on errors.")
@click.option("-q", "--quiet", count=True, help="Less output: only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """georisk: hazards beside people, on a map, graded in four colours.

    Data goes to the embedded store (a GeoPackage under GEORISK_DATA_DIR, default ./georisk-data)
    or to PostGIS when GEORISK_DATABASE_URL is set.
    """
    verbosity = verbose - quiet
    # Errors reach the user as one line from `main`; the logged originals (database text,
    # tracebacks) are for -v only.
    logging.basicConfig(
        level=logging.DEBUG if verbosity > 0 else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(verbosity)


@cli.command("layers")
@pass_context
def layers_command(ctx: Context) -> None:
    """List the catalogue's layers with their feature counts."""
    with ctx.open_store() as store:
        for layer in store.catalogue:
            if layer.kind == "raster":
                amount = "stored" if store.raster_path(layer.id) else "empty"
            else:
                amount = f"{store.count(layer.id)} features"
            click.echo(
                f"{layer.id:20} {layer.kind:6} {amount:>16}  {layer.title.zh} / {layer.title.en}"
            )


_import_options: list[Callable[[Any], Any]] = [
    click.argument("layer"),
    click.argument("file", type=click.Path(path_type=Path, dir_okay=False)),
    click.option(
        "--crs", help="Source CRS: an EPSG code (4490, 4547…), or gcj02 / bd09 for AMap/Baidu data."
    ),
    click.option(
        "--id-field", help="Column holding feature ids (default: the layer's id field, `id`)."
    ),
    click.option(
        "--source-layer", help="Layer to read from a file that holds several (GeoPackage)."
    ),
]


def _with_import_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_import_options):
        command = option(command)
    return command


@cli.command("validate")
@_with_import_options
@pass_context
def validate_command(ctx: Context, layer: str, file: Path, **options: Any) -> None:
    """Check FILE against LAYER's catalogue entry; writes nothing."""
    from geo_service.importer import validate_file

    catalogue_layer = _layer(ctx, layer)
    if catalogue_layer.kind == "raster":
        raise click.UsageError(
            f"{layer} is a raster layer: `georisk import {layer} FILE` checks it"
        )
    report, _ = validate_file(catalogue_layer, file, **options)
    _print_report(ctx, report, action="checked")
    if not report.ok:
        sys.exit(EXIT_DATA_ERRORS)


@cli.command("import")
@_with_import_options
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Write the valid features and put the rejected ones in FILE.rejects.csv.",
)
@pass_context
def import_command(ctx: Context, layer: str, file: Path, **options: Any) -> None:
    """Import FILE into LAYER: GeoJSON, GeoPackage, Shapefile (.shp/.zip), GeoParquet, CSV, GeoTIFF.

    Every problem is reported at once; with any error nothing is written (unless
    --skip-invalid). Features whose ids are already stored are updated.
    """
    from geo_service.importer import import_file

    _layer(ctx, layer)
    with ctx.open_store() as store:
        report = import_file(store, layer, file, **options)
    _print_report(ctx, report, action="imported")
    if report.errors and report.written is None:
        sys.exit(EXIT_DATA_ERRORS)


@cli.command("import-osm")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--layers", help="Comma-separated layers to fill (default: every layer OSM maps to).")
@pass_context
def import_osm_command(ctx: Context, file: Path, layers: str | None) -> None:
    """Import an OpenStreetMap extract (.osm.pbf): railways, roads, schools, buildings, water."""
    from geo_service.osm import import_osm

    wanted = [name.strip() for name in layers.split(",")] if layers else None
    for name in wanted or []:
        _layer(ctx, name)
    with ctx.open_store() as store, _progress(ctx, "Reading OSM") as step:
        results = import_osm(store, file, layers=wanted, progress=step)
    for name, result in results.items():
        ctx.say(f"{name:20} {result.inserted:>8} new {result.updated:>8} updated")


@cli.command("demo")
@click.option("--no-serve", is_flag=True, help="Only build and load the demo region.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--seed", default=2020, show_default=True, type=int, help="Random seed of the region."
)
@click.option(
    "--no-analyze", is_flag=True, help="Leave out the risk analysis (no findings, no colours)."
)
@pass_context
def demo_command(
    ctx: Context, no_serve: bool, host: str, port: int, seed: int, no_analyze: bool
) -> None:
    """Build the demo region (a fictional city), load it, analyse it, and serve the map."""
    from geo_service.demo import build_demo

    with ctx.open_store() as store, _progress(ctx, "Building the demo region") as step:
        summary = build_demo(store, seed=seed, progress=step)
    for name, count in summary.counts.items():
        ctx.say(f"{name:20} {count:>8}")
    if not no_analyze:  # the map's risk colours, findings and risk surface come from it
        click.get_current_context().invoke(analyze_command, rules=None)
    if not no_serve:
        _serve(ctx, host, port)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@pass_context
def serve_command(ctx: Context, host: str, port: int) -> None:
    """Serve the web service and the map."""
    _serve(ctx, host, port)


@cli.group("db")
def db_group() -> None:
    """Manage the PostGIS database (GEORISK_DATABASE_URL)."""


@db_group.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or migrate georisk's tables (runs the Alembic migrations)."""
    if not ctx.settings.database_url:
        raise click.UsageError(
            "GEORISK_DATABASE_URL is not set; the embedded store needs no upgrade"
        )
    from geo_service.catalogue import load_catalogue
    from geo_service.store.postgis import upgrade

    upgrade(ctx.settings.database_url, load_catalogue(ctx.settings.catalogue_dir))
    ctx.say("database is up to date")


cli.add_command(assets_command)
for command in ANALYSIS_COMMANDS:  # analyze, export, findings, measures, rules
    cli.add_command(command)
cli.add_command(tiles_command)
cli.add_command(keys_command)
cli.add_command(map_command)
cli.add_command(query_group)


def _serve(ctx: Context, host: str, port: int) -> None:
    import uvicorn

    from geo_service.api import create_app
    from geo_service.webmap.basemap import BasemapError, resolve_basemap

    try:  # a wrong basemap setting stops the start, not the first map request
        resolve_basemap(ctx.settings)
    except BasemapError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.say(f"georisk at http://{host}:{port}/map (Ctrl+C to stop)")
    uvicorn.run(create_app(ctx.settings), host=host, port=port, log_level="warning")


def _layer(ctx: Context, layer_id: str) -> Layer:
    from geo_service.catalogue import load_catalogue

    catalogue = load_catalogue(ctx.settings.catalogue_dir)
    if layer_id in catalogue and not catalogue[layer_id].importable:
        raise click.BadParameter(
            f"{layer_id} is written by the analysis (georisk analyze), not imported",
            param_hint="LAYER",
        )
    if layer_id not in catalogue:
        known = ", ".join(sorted(layer.id for layer in catalogue if layer.importable))
        raise click.BadParameter(
            f"unknown layer {layer_id!r}; known layers: {known}", param_hint="LAYER"
        )
    return catalogue[layer_id]


def _print_report(ctx: Context, report: Any, action: str) -> None:
    errors, notes = report.errors, [p for p in report.problems if p.severity == "note"]
    for problem in errors[:_MAX_LISTED_PROBLEMS]:
        click.echo(f"error: {problem}", err=True)
    if len(errors) > _MAX_LISTED_PROBLEMS:
        click.echo(f"error: … and {len(errors) - _MAX_LISTED_PROBLEMS} more", err=True)
    if ctx.verbosity >= 0:
        for problem in notes[:_MAX_LISTED_PROBLEMS]:
            click.echo(f"note: {problem}", err=True)
    summary = f"{report.file}: {report.features_read} read, {report.features_valid} valid"
    if errors:
        summary += f", {len(errors)} error{'s' if len(errors) != 1 else ''}"
    if report.written is not None:
        summary += (
            f"; {report.written.inserted} new, {report.written.updated} updated in {report.layer}"
        )
    elif action == "imported":
        summary += "; nothing written"
    if report.rejects_file is not None:
        summary += f"; rejected features in {report.rejects_file}"
    ctx.say(summary)


@contextmanager
def _progress(ctx: Context, label: str) -> Iterator[Callable[[str], None]]:
    """A progress bar advanced by ``step(name)``; silent with -q."""
    from tqdm import tqdm

    with tqdm(desc=label, unit=" steps", disable=ctx.verbosity < 0, file=sys.stderr) as bar:

        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        yield step


def main() -> None:
    """Entry point: one clear line on failure, the traceback only with -v."""
    verbose = any(arg == "--verbose" or arg.startswith("-v") for arg in sys.argv[1:])
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last line of defence: never a traceback unless asked
        if verbose:
            raise
        click.echo(f"error: {_user_message(exc)}", err=True)
        sys.exit(EXIT_DATA_ERRORS if _is_data_error(exc) else EXIT_USAGE + 1)


def _user_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_data_error(exc: Exception) -> bool:
    from geo_service.catalogue import CatalogueError
    from geo_service.osm import OSMError

    return isinstance(exc, (CatalogueError, OSMError))
