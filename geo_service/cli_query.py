"""``georisk query``: buffer and proximity queries from the command line.

``georisk query buffer`` prints what lies within a distance of a point or a stored feature (a
table of counts per collection and category, the buffer's area and the people inside) and
writes the features to GeoJSON or CSV; ``georisk query near`` prints or writes the pairs of two
layers within a distance. Registered on the main group by ``geo_service.cli``; the work is
``geo_service.query``, with the same caps as the web service (``GEORISK_QUERY_MAX_…``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from geo_service.cli import Context
    from geo_service.query import BufferResult, NearPairs

_OUTPUT = click.Path(path_type=Path, dir_okay=False)
_OUTPUT_HELP = "Write the features to this file: .geojson (RFC 7946) or .csv."
_DISTANCE_HELP = "Distance in metres."


@click.group("query")
def query_group() -> None:
    """Buffer and proximity queries: what lies within a distance, in metres."""


@query_group.command("buffer")
@click.option("--lon", type=float, help="Longitude of the centre (EPSG:4326).")
@click.option("--lat", type=float, help="Latitude of the centre (EPSG:4326).")
@click.option(
    "--feature",
    metavar="LAYER:ID",
    help="Centre on a stored feature, e.g. chemical_plants:plant-001.",
)
@click.option("--distance-m", type=float, required=True, help=_DISTANCE_HELP)
@click.option(
    "--collections", help="Comma-separated collections to search (default: every input layer)."
)
@click.option(
    "--filter", "filter_", metavar="CQL2", help="CQL2 text filter applied to each collection."
)
@click.option("-o", "--output", type=_OUTPUT, help=_OUTPUT_HELP)
@click.pass_obj
def buffer_command(
    ctx: Context,
    lon: float | None,
    lat: float | None,
    feature: str | None,
    distance_m: float,
    collections: str | None,
    filter_: str | None,
    output: Path | None,
) -> None:
    """What lies within --distance-m of a point (--lon/--lat) or a feature (--feature)."""
    import shapely

    from geo_service.query import buffer_query

    reference = _feature(feature)
    if (lon is None) != (lat is None) or (lon is None) == (reference is None):
        raise click.UsageError("give --lon and --lat, or --feature LAYER:ID")
    _check_output(output)
    with ctx.open_store() as store, _refusals():
        result = buffer_query(
            store,
            geometry=None if lon is None else shapely.Point(lon, lat),
            feature=reference,
            distance_m=distance_m,
            collections=None if collections is None else collections.split(","),
            filter=filter_,
            max_distance_m=ctx.settings.query_max_distance_m,
            max_features=ctx.settings.query_max_features,
        )
    _print_summary(ctx, result)
    if output is not None:
        _write_buffer(result, output)
        ctx.say(f"{output}: {result.number_returned} features")


@query_group.command("near")
@click.argument("from_layer", metavar="FROM")
@click.argument("to_layer", metavar="TO")
@click.option("--distance-m", type=float, required=True, help=_DISTANCE_HELP)
@click.option("--filter", "filter_", metavar="CQL2", help="CQL2 text filter on the TO layer.")
@click.option("--from-filter", metavar="CQL2", help="CQL2 text filter on the FROM layer.")
@click.option("-o", "--output", type=_OUTPUT, help=_OUTPUT_HELP)
@click.pass_obj
def near_command(
    ctx: Context,
    from_layer: str,
    to_layer: str,
    distance_m: float,
    filter_: str | None,
    from_filter: str | None,
    output: Path | None,
) -> None:
    """Every pair of a FROM feature and a TO feature within --distance-m of each other."""
    from geo_service.query import near_pairs

    _check_output(output)
    with ctx.open_store() as store, _refusals():
        pairs = near_pairs(
            store,
            from_layer,
            to_layer,
            distance_m,
            filter_,
            from_filter=from_filter,
            max_distance_m=ctx.settings.query_max_distance_m,
            max_pairs=ctx.settings.query_max_pairs,
        )
    summary = pairs.summary
    ctx.say(
        f"{summary['pairs']} pairs within {pairs.distance_m:g} m: {summary['from_features']} "
        f"{pairs.from_layer}, {summary['to_features']} {pairs.to_layer}"
    )
    if output is not None:
        _write_pairs(pairs, output)
        ctx.say(f"{output}: {len(pairs)} pairs")
    else:
        for row in pairs.frame.itertuples(index=False):
            ctx.say(
                f"  {row.from_id:<16} {row.to_id:<16} {row.distance_m:>10.1f} m  "
                f"{row.to_name or ''} {f'({row.to_category})' if row.to_category else ''}".rstrip()
            )


def _feature(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    layer, sep, feature_id = text.partition(":")
    if not sep or not layer or not feature_id:
        raise click.BadParameter(f"{text!r}: expected LAYER:ID", param_hint="--feature")
    return layer, feature_id


def _check_output(output: Path | None) -> None:
    if output is not None and output.suffix.lower() not in (".geojson", ".json", ".csv"):
        raise click.BadParameter(f"{output}: write .geojson or .csv", param_hint="-o")


@contextmanager
def _refusals() -> Iterator[None]:
    """A refused query (``QueryError``) as a usage error naming what is wrong (exit code 2)."""
    from geo_service.query import QueryError

    try:
        yield
    except QueryError as exc:
        raise click.UsageError(str(exc)) from None


def _print_summary(ctx: Context, result: BufferResult) -> None:
    summary = result.summary
    people = summary["population"]
    ctx.say(
        f"within {result.distance_m:g} m: {summary['area_m2'] / 1e6:.3f} km², "
        + ("no population raster" if people is None else f"{people:,.0f} people")
    )
    ctx.say(f"{'collection':<22} {'count':>6}  by category")
    for name, part in summary["collections"].items():
        categories = ", ".join(f"{key} {count}" for key, count in part["by_category"].items())
        ctx.say(f"{name:<22} {part['count']:>6}  {categories}".rstrip())


def _write_buffer(result: BufferResult, output: Path) -> None:
    document = result.to_geojson()
    if output.suffix.lower() != ".csv":
        output.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        return
    rows = []
    for feature in document["features"]:
        props, layer = feature["properties"], result.layers[feature["properties"]["collection"]]
        field = layer.category_field
        rows.append(
            {
                "collection": layer.id,
                "id": feature["id"],
                "name": props.get("name"),
                "category": None if field is None else props.get(field),
                "distance_m": props["distance_m"],
                "geometry_wkt": _wkt(feature["geometry"]),
            }
        )
    _write_csv(output, ["collection", "id", "name", "category", "distance_m", "geometry_wkt"], rows)


def _write_pairs(pairs: NearPairs, output: Path) -> None:
    features = pairs.to_geojson()
    if output.suffix.lower() != ".csv":
        document = {"type": "FeatureCollection", "features": features, "summary": pairs.summary}
        output.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        return
    names = ["from_id", "from_name", "from_category", "to_id", "to_name", "to_category"]
    names.append("distance_m")
    _write_csv(output, names, [{n: f["properties"][n] for n in names} for f in features])


def _write_csv(output: Path, names: list[str], rows: list[dict[str, Any]]) -> None:
    # UTF-8 with a BOM, so Excel reads the Chinese names right
    with output.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.DictWriter(file, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def _wkt(geometry: dict[str, Any] | None) -> str:
    import shapely.geometry

    return "" if geometry is None else shapely.geometry.shape(geometry).wkt
