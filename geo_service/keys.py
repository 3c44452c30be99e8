"""API keys: made at random, configured by their SHA-256 only, checked in constant time.

A key is ``grk_`` and 32 random bytes (256 bits) in URL-safe base64. The configuration holds
its name, its role and the SHA-256 of the key, never the key: whoever reads the configuration,
a backup or the database of a leaked deployment cannot write with it.

Why a plain SHA-256 and not bcrypt/argon2: slow, salted hashes protect *passwords*, which people
choose from a small space that an attacker can try word by word. A key of 256 random bits cannot
be guessed from its hash however fast the hash is, so a fast hash loses nothing, and it keeps the
check of each request cheap. (The same reasoning as GitHub's and Stripe's hashed tokens.)

Keys come from ``GEORISK_API_KEYS`` (a JSON list of ``{name, role, sha256}``) and from the file
``GEORISK_API_KEYS_FILE`` (TOML ``[[keys]]`` tables, or YAML ``keys:`` list). Roles rank
viewer < analyst < admin; a key of a higher role may do what a lower one may.

This module needs no web framework: the CLI (``georisk keys``) and ``geo_service.api.auth``
both use it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from geo_service.settings import Settings

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")  # each may do what those before may
KEY_PREFIX = "grk_"
_MAX_KEY_LENGTH = 256  # longer is no key of ours; not worth hashing


class ApiKey(BaseModel):
    """One configured API key: who holds it, what it may do, and only the SHA-256 of the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Who holds the key; written as `by` in the history of each change it makes.",
    )
    role: Role = Field(description="What the key may do: `viewer` < `analyst` < `admin`.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the key, 64 lower-case hex digits (`georisk keys new` prints it).",
    )


class KeyConfigError(ValueError):
    """The configured keys cannot be used (an unreadable file, a bad entry, a name twice)."""


def new_key() -> str:
    """A fresh key: ``grk_`` and 256 random bits from the operating system's generator."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """The SHA-256 of a key, as configured (hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def match(presented: str, keys: Sequence[ApiKey]) -> ApiKey | None:
    """The configured key whose hash is the presented key's; None when none is.

    The presented key's digest is compared with every configured digest by
    ``hmac.compare_digest``, all of them each time, so the time taken tells neither how much of
    a digest matched nor which key (or whether any) matched.
    """
    if len(presented) > _MAX_KEY_LENGTH:
        return None
    digest = hashlib.sha256(presented.encode()).digest()
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(digest, bytes.fromhex(key.sha256)) and found is None:
            found = key
    return found


def role_allows(role: Role, needed: Role) -> bool:
    """Whether a key of ``role`` may do what needs ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


def configured_keys(settings: Settings) -> tuple[ApiKey, ...]:
    """Every key of the settings: ``api_keys`` then those of ``api_keys_file``, checked.

    Raises ``KeyConfigError`` naming the file and the entry for an unreadable file, a bad entry,
    one name with two keys, or one key under two names.
    """
    keys, where = list(settings.api_keys), "GEORISK_API_KEYS"
    if settings.api_keys_file is not None:
        keys += read_key_file(settings.api_keys_file)
        where += f" and {settings.api_keys_file}"
    return _checked(keys, where)


def read_key_file(path: Path) -> list[ApiKey]:
    """The keys of a TOML (``[[keys]]``) or YAML (``keys:``) file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyConfigError(f"API key file {path}: cannot read it ({exc.strerror})") from None
    try:
        document = (
            yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else tomllib.loads(text)
        )
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise KeyConfigError(f"API key file {path}: not valid TOML/YAML ({exc})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyConfigError(f"API key file {path}: expected a list `keys` of name/role/sha256")
    return [_entry(path, n, entry) for n, entry in enumerate(entries, start=1)]


def config_lines(key: ApiKey) -> dict[str, str]:
    """The configuration holding ``key`` (its hash only): as an env variable, TOML and YAML."""
    record = key.model_dump()
    return {
        "env": "GEORISK_API_KEYS=" + shlex.quote(f"[{key.model_dump_json()}]"),
        "toml": "[[keys]]\n" + "".join(f"{k} = {_toml_string(v)}\n" for k, v in record.items()),
        "yaml": yaml.safe_dump({"keys": [record]}, allow_unicode=True, sort_keys=False),
    }


def _entry(path: Path, position: int, entry: Any) -> ApiKey:
    try:
        return ApiKey.model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()
        )
        raise KeyConfigError(f"API key file {path}, key {position}: {problems}") from None


def _checked(keys: Iterable[ApiKey], where: str) -> tuple[ApiKey, ...]:
    """The keys, each once; one name with two keys or one key with two names is refused."""
    by_name: dict[str, ApiKey] = {}
    by_hash: dict[str, ApiKey] = {}
    for key in keys:
        if by_name.get(key.name, key) != key:
            raise KeyConfigError(f"API key name {key.name!r} is configured twice ({where})")
        if by_hash.get(key.sha256, key) != key:
            other = by_hash[key.sha256].name
            raise KeyConfigError(
                f"one API key is configured as both {other!r} and {key.name!r} ({where})"
            )
        by_name[key.name] = by_hash[key.sha256] = key
    return tuple(by_name.values())


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
