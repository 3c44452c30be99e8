"""``georisk map -o FILE.html``: the risk map as one file that opens with no server.

Registered by ``geo_service.cli``; heavy imports happen inside the command, so ``georisk
--help`` stays quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from geo_service.cli import Context


@click.command("map")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, writable=True),
    help="The HTML file to write.",
)
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="Language of titles, labels and popups.",
)
@click.pass_obj
def map_command(ctx: Context, output: Path, lang: str) -> None:
    """Write the risk map to one HTML file that opens from disk, offline.

    Every script and style is inside the file, and every layer too (at most
    GEORISK_MAP_STANDALONE_MAX_FEATURES features each, labelled "first N of M" when cut).
    The buffer query, vector tiles and the risk surface's tiles need the server: use
    `georisk serve` and /map for them.
    """
    from geo_service.webmap.standalone import StandaloneError, standalone_map

    with ctx.open_store() as store:
        try:
            html = standalone_map(store, ctx.settings, "en" if lang == "en" else "zh")
        except StandaloneError as exc:
            raise click.ClickException(str(exc)) from None
    output.write_text(html, encoding="utf-8")
    ctx.say(f"{output}: {len(html.encode()) / 1e6:.1f} MB, opens with no server")
