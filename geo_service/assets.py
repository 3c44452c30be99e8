"""Front-end files of the map (Leaflet and its plugins) and of the API docs (Swagger UI).

Government intranets have no internet, so the map never loads a script or a style from a CDN.
``assets.lock.json`` pins each npm package by version and ``dist.integrity`` (sha512) and names
the files to take from its tarball. ``fetch_assets`` downloads each tarball once, at set-up time,
refuses one whose digest differs from the lock, and extracts the named files into
``geo_service/static/vendor/<package>/`` (never committed). Run it as ``georisk assets fetch`` or
``python -m geo_service.assets``.

``registry`` may be an npm registry (default ``https://registry.npmjs.org``, or a mirror) or a
local folder of tarballs made by ``npm pack NAME@VERSION`` elsewhere, for a machine that reaches
no registry at all: the digests are checked the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import click

DEFAULT_REGISTRY = "https://registry.npmjs.org"
LOCK_FILE = Path(__file__).with_name("assets.lock.json")
STATIC_DIR = Path(__file__).with_name("static")
VENDOR_DIR = STATIC_DIR / "vendor"
MANIFEST_NAME = ".georisk-assets.json"
FETCH_HINT = "run `georisk assets fetch` (or `python -m geo_service.assets`)"

_TIMEOUT_S = 60


class AssetError(Exception):
    """Assets that could not be fetched or did not match the lock; the message is for a user."""


@dataclass(frozen=True)
class Package:
    """One pinned npm package and the files georisk takes from it."""

    name: str
    version: str
    integrity: str
    files: tuple[str, ...]

    @property
    def spec(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def tarball_url(self, registry: str) -> str:
        """Where the registry keeps the tarball (a scoped name keeps its scope in the folder)."""
        basename = self.name.rsplit("/", 1)[-1]
        return f"{registry.rstrip('/')}/{self.name}/-/{basename}-{self.version}.tgz"

    @property
    def pack_filename(self) -> str:
        """The file name ``npm pack`` gives the tarball."""
        return f"{self.name.removeprefix('@').replace('/', '-')}-{self.version}.tgz"


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch_assets`` did with one package."""

    package: Package
    status: Literal["fetched", "present"]
    directory: Path


def fetch_assets(
    target_dir: Path | None = None, registry: str | None = None, *, lock: Path | None = None
) -> list[FetchResult]:
    """Fetch, verify and extract every locked package into ``target_dir`` (default: the vendor dir).

    A package already extracted and unchanged since (its files match the digests recorded when it
    was extracted, for the locked integrity) is skipped, so running this again costs nothing.
    Raises ``AssetError`` when a tarball cannot be had or its sha512 differs from the lock.
    """
    target = Path(target_dir) if target_dir is not None else VENDOR_DIR
    source = registry or DEFAULT_REGISTRY
    results = []
    for package in load_lock(lock):
        directory = target / package.name
        if _verified(package, directory):
            results.append(FetchResult(package, "present", directory))
            continue
        data = _download(package, source)
        _check_integrity(package, data)
        _extract(package, data, directory)
        results.append(FetchResult(package, "fetched", directory))
    return results


def load_lock(path: Path | None = None) -> list[Package]:
    """The packages of the lock file (default: the one shipped beside this module)."""
    path = path or LOCK_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        packages = [
            Package(p["name"], p["version"], p["integrity"], tuple(p["files"]))
            for p in raw["packages"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetError(f"{path}: not a valid asset lock: {exc}") from None
    for package in packages:
        for name in (package.name, *package.files):
            if not _is_safe_relative(name.removeprefix("@")):
                raise AssetError(f"{path}: {package.spec}: unsafe path {name!r}")
    return packages


def vendor_url(path: str) -> str:
    """The URL under which the app serves ``path`` (``<package>/<file>``) of the vendor dir."""
    return f"/static/vendor/{path}"


def missing_files(paths: list[str], target_dir: Path | None = None) -> list[str]:
    """Those of ``paths`` (``<package>/<file>``, relative to the vendor dir) that are absent."""
    target = Path(target_dir) if target_dir is not None else VENDOR_DIR
    return [path for path in paths if not (target / path).is_file()]


def _verified(package: Package, directory: Path) -> bool:
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    recorded = manifest.get("files", {})
    if manifest.get("integrity") != package.integrity or set(recorded) != set(package.files):
        return False
    for name, digest in recorded.items():
        path = directory / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
    return True


def _download(package: Package, registry: str) -> bytes:
    local = Path(registry.removeprefix("file://"))
    if not registry.startswith(("http://", "https://")):
        path = local / package.pack_filename
        try:
            return path.read_bytes()
        except OSError as exc:
            raise AssetError(
                f"{package.spec}: cannot read {path} ({exc.strerror}); make it with "
                f"`npm pack {package.spec}` on a machine that reaches the registry"
            ) from None
    url = package.tarball_url(registry)
    request = urllib.request.Request(url, headers={"User-Agent": "georisk-assets"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AssetError(
            f"{package.spec}: cannot download {url} ({reason}); check the network, or pass "
            "--registry with a mirror or a folder of `npm pack` tarballs"
        ) from None


def _check_integrity(package: Package, data: bytes) -> None:
    expected = [
        entry.removeprefix("sha512-")
        for entry in package.integrity.split()
        if entry.startswith("sha512-")
    ]
    if not expected:
        raise AssetError(f"{package.spec}: the lock has no sha512 integrity")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if not any(hmac.compare_digest(actual, digest) for digest in expected):
        raise AssetError(
            f"{package.spec}: integrity mismatch, refusing the tarball: the lock says "
            f"sha512-{expected[0]}, the download is sha512-{actual}"
        )


def _extract(package: Package, data: bytes, directory: Path) -> None:
    """Write the package's files to a fresh folder, then put it in place of ``directory``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = {
                # npm tarballs hold one top folder, usually package/
                str(PurePosixPath(*PurePosixPath(m.name).parts[1:])): m
                for m in archive.getmembers()
                if m.isfile()
            }
            contents = {}
            for name in package.files:
                member = members.get(name)
                handle = archive.extractfile(member) if member is not None else None
                if handle is None:
                    raise AssetError(f"{package.spec}: the tarball has no file {name!r}")
                contents[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AssetError(f"{package.spec}: not a readable tarball: {exc}") from None
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory.parent))
    try:
        for name, content in contents.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(content)
        manifest = {
            "name": package.name,
            "version": package.version,
            "integrity": package.integrity,
            "files": {name: hashlib.sha256(c).hexdigest() for name, c in contents.items()},
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_safe_relative(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and ".." not in parts and "\\" not in path


@click.group("assets")
def assets_command() -> None:
    """Front-end files of the map (Leaflet…), served by georisk itself: no CDN, no internet."""


@assets_command.command("fetch")
@click.option(
    "--registry",
    envvar="GEORISK_NPM_REGISTRY",
    help=f"npm registry URL (default {DEFAULT_REGISTRY}), or a folder of `npm pack` tarballs.",
)
@click.option(
    "--target",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to extract into (default: geo_service/static/vendor, which the app serves).",
)
@click.pass_context
def fetch_command(ctx: click.Context, registry: str | None, target: Path | None) -> None:
    """Download the pinned packages, check their sha512 against the lock, extract their files."""
    quiet = getattr(ctx.obj, "verbosity", 0) < 0
    try:
        results = fetch_assets(target, registry)
    except AssetError as exc:
        raise click.ClickException(str(exc)) from None
    for result in results:
        if not quiet:
            click.echo(f"{result.package.spec:40} {result.status:8} {result.directory}")


def main() -> None:
    """``python -m geo_service.assets [--registry URL|DIR] [--target DIR]``."""
    fetch_command.main(sys.argv[1:], prog_name="python -m geo_service.assets")


if __name__ == "__main__":
    main()
