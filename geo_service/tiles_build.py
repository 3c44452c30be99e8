"""``georisk tiles build``: pre-built PNG map tiles of raster layers, as MBTiles files.

The tiles are the ones ``/collections/{id}/map/tiles/…`` serves (same colours, same bytes),
for a map that reads them offline or from a plain file server. Each layer goes to
``<tiles_dir>/<layer>.mbtiles`` (``GEORISK_TILES_DIR``, default ``./tiles``), written whole
under a temporary name and then renamed into place. Tiles with nothing to draw are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from geo_service.settings import Settings

if TYPE_CHECKING:  # imported when used: the CLI starts without geopandas
    from geo_service.catalogue import Catalogue
    from geo_service.store import Store
    from geo_service.tiling.grid import TileAddress

DEFAULT_LAYERS = ("population", "risk_surface")
MAX_TILES = 200_000  # refuse a zoom range that would take hours; ask for fewer zooms


@dataclass(frozen=True)
class BuildResult:
    """What was built for one layer."""

    layer_id: str
    path: Path
    tiles: int
    minzoom: int
    maxzoom: int


@click.group("tiles")
def tiles_command() -> None:
    """Tile sets for offline maps: PNG map tiles of rasters, pre-built into MBTiles."""


@tiles_command.command("build")
@click.argument("layers", nargs=-1)
@click.option("--min-zoom", type=click.IntRange(0, 24), help="Lowest zoom (default: the raster's).")
@click.option(
    "--max-zoom",
    type=click.IntRange(0, 24),
    help="Highest zoom (default: two beyond the raster's resolution).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of the MBTiles files (default: GEORISK_TILES_DIR, ./tiles).",
)
@click.pass_context
def build_command(
    ctx: click.Context,
    layers: tuple[str, ...],
    min_zoom: int | None,
    max_zoom: int | None,
    output_dir: Path | None,
) -> None:
    """Build LAYERS' map tiles (default: population and risk_surface, those stored).

    Each goes to OUTPUT_DIR/<layer>.mbtiles (MBTiles 1.3, PNG, rows counted from the bottom).
    """
    from geo_service.store import open_store

    settings: Settings = getattr(ctx.obj, "settings", None) or Settings()
    quiet = getattr(ctx.obj, "verbosity", 0) < 0
    if min_zoom is not None and max_zoom is not None and min_zoom > max_zoom:
        raise click.BadParameter(
            f"--min-zoom {min_zoom} is above --max-zoom {max_zoom}", param_hint="--min-zoom"
        )
    target = output_dir or settings.tiles_dir
    with open_store(settings) as store:
        chosen = _chosen_layers(store.catalogue, layers)
        built = 0
        for layer_id in chosen:
            if store.raster_path(layer_id) is None:
                if layers:  # asked for by name: an error; by default: skipped
                    raise click.ClickException(f"raster layer {layer_id} holds no raster yet")
                if not quiet:
                    click.echo(f"{layer_id:14} skipped: no raster stored")
                continue
            result = build_mbtiles(store, layer_id, target, min_zoom=min_zoom, max_zoom=max_zoom)
            built += 1
            if not quiet:
                click.echo(
                    f"{layer_id:14} {result.tiles:>8} tiles  z{result.minzoom}–{result.maxzoom}"
                    f"  {result.path}"
                )
    if not built:
        raise click.ClickException("nothing to build: no raster layer holds a raster")


def build_mbtiles(
    store: Store,
    layer_id: str,
    output_dir: Path,
    *,
    min_zoom: int | None = None,
    max_zoom: int | None = None,
) -> BuildResult:
    """Render every tile of ``layer_id`` in the zoom range into ``output_dir/<layer>.mbtiles``."""
    from geo_service.tiling import raster
    from geo_service.tiling.grid import tiles_covering
    from geo_service.tiling.mbtiles import write_mbtiles

    layer = store.catalogue[layer_id]
    path = store.raster_path(layer_id)
    if path is None:
        raise click.ClickException(f"raster layer {layer_id} holds no raster yet")
    try:
        style = raster.raster_style(store.catalogue, layer)
    except raster.RasterStyleError as exc:
        raise click.ClickException(str(exc)) from None
    info = raster.raster_info(path)
    low = info.minzoom if min_zoom is None else min_zoom
    high = max(low, info.maxzoom) if max_zoom is None else max_zoom
    if low > high:
        raise click.BadParameter(
            f"--min-zoom {low} is above the highest zoom {high}", param_hint="--min-zoom"
        )
    addresses = [
        tile for zoom in range(low, high + 1) for tile in tiles_covering(info.bounds, zoom)
    ]
    if len(addresses) > MAX_TILES:
        raise click.BadParameter(
            f"z{low}–{high} of {layer_id} is {len(addresses):,} tiles (at most {MAX_TILES:,}); "
            "lower --max-zoom",
            param_hint="--max-zoom",
        )

    def rendered() -> Iterator[tuple[TileAddress, bytes]]:
        for tile in addresses:
            data = raster.render_tile(path, style, tile)
            if data is not None:
                yield tile, data

    west, south, east, north = info.bounds
    metadata = {
        "name": layer_id,
        "description": f"{layer.title.zh} / {layer.title.en}",
        "format": "png",
        "type": "overlay",
        "version": "1",
        "minzoom": str(low),
        "maxzoom": str(high),
        "bounds": f"{west},{south},{east},{north}",
        "center": f"{(west + east) / 2},{(south + north) / 2},{low}",
        "attribution": "georisk",
    }
    target = output_dir / f"{layer_id}.mbtiles"
    count = write_mbtiles(target, metadata, rendered())
    return BuildResult(layer_id, target, count, low, high)


def _chosen_layers(catalogue: Catalogue, asked: tuple[str, ...]) -> list[str]:
    rasters = [layer.id for layer in catalogue if layer.kind == "raster"]
    if not asked:
        return [layer_id for layer_id in DEFAULT_LAYERS if layer_id in catalogue]
    for name in asked:
        if name not in rasters:
            raise click.BadParameter(
                f"{name!r} is not a raster layer; raster layers: {', '.join(rasters)}",
                param_hint="LAYERS",
            )
    return list(dict.fromkeys(asked))
