"""``georisk keys``: make an API key, list the configured ones.

Registered on the main group by ``geo_service.cli``. A new key is printed once and never stored:
the configuration holds only its SHA-256 (``geo_service.keys`` says why that is enough).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

import click
from pydantic import ValidationError

from geo_service.keys import ApiKey, Role, config_lines, configured_keys, key_hash, new_key

if TYPE_CHECKING:
    from geo_service.cli import Context


@click.group("keys")
def keys_command() -> None:
    """API keys for the web service's writes (and reads, with GEORISK_API_READ_REQUIRES_KEY)."""


@keys_command.command("new")
@click.option("--name", required=True, help="Who holds the key; the history records it as `by`.")
@click.option(
    "--role",
    type=click.Choice(get_args(Role)),
    default="analyst",
    show_default=True,
    help="viewer reads, analyst also changes statuses, admin may do everything.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["env", "toml", "yaml"]),
    default="env",
    show_default=True,
    help="How to print the configuration entry: GEORISK_API_KEYS, or a GEORISK_API_KEYS_FILE.",
)
@click.pass_obj
def new_command(ctx: Context, name: str, role: Role, fmt: str) -> None:
    """Make a key: print it once, and the configuration entry that holds only its hash."""
    key = new_key()
    try:
        entry = ApiKey(name=name, role=role, sha256=key_hash(key))
    except ValidationError as exc:
        raise click.BadParameter(
            f"{name!r}: {exc.errors()[0]['msg']}", param_hint="--name"
        ) from None
    taken = {k.name for k in configured_keys(ctx.settings)}
    if name in taken:
        raise click.BadParameter(f"a key named {name!r} is configured already", param_hint="--name")
    # the key goes to stdout even with -q: it is the command's result, and shown only now
    click.echo(key)
    click.echo(
        f"\nThe key above is shown once; georisk keeps only its SHA-256. Give it to {name}, "
        "then add this to the configuration:\n",
        err=True,
    )
    click.echo(config_lines(entry)[fmt].rstrip("\n"))


@keys_command.command("list")
@click.pass_obj
def list_command(ctx: Context) -> None:
    """The configured keys: name and role (the keys themselves are not stored anywhere)."""
    keys = configured_keys(ctx.settings)
    if not keys:
        ctx.say("no API keys configured (GEORISK_API_KEYS, GEORISK_API_KEYS_FILE)")
    for key in keys:
        click.echo(f"{key.name}\t{key.role}")
