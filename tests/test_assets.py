"""Offline front-end assets: pinned by sha512, extracted once, refused when tampered with."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_service.assets import (
    AssetError,
    Package,
    assets_command,
    fetch_assets,
    load_lock,
)

FILES = {"dist/thing.js": b"window.thing = 1;\n", "dist/thing.css": b".thing{}\n"}


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in {**files, "README.md": b"not wanted"}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Path, Path]:
    """A folder holding an `npm pack` tarball of @scope/thing, and a lock pinning it."""
    folder = tmp_path / "tarballs"
    folder.mkdir()
    data = _tarball(FILES)
    (folder / "scope-thing-1.0.0.tgz").write_bytes(data)
    lock = tmp_path / "lock.json"
    package = {"name": "@scope/thing", "version": "1.0.0", "integrity": _integrity(data)}
    lock.write_text(json.dumps({"packages": [{**package, "files": sorted(FILES)}]}))
    return folder, lock


def test_fetch_extracts_only_the_locked_files_then_skips(
    tmp_path: Path, registry: tuple[Path, Path]
) -> None:
    folder, lock = registry
    target = tmp_path / "vendor"
    first = fetch_assets(target, str(folder), lock=lock)
    assert [r.status for r in first] == ["fetched"]
    package_dir = target / "@scope" / "thing"
    for name, content in FILES.items():
        assert (package_dir / name).read_bytes() == content
    assert not (package_dir / "README.md").exists()
    assert [p.name for p in target.joinpath("@scope").iterdir()] == ["thing"]  # no staging left

    second = fetch_assets(target, str(tmp_path / "nowhere"), lock=lock)
    assert [r.status for r in second] == ["present"]


def test_a_changed_file_is_fetched_again(tmp_path: Path, registry: tuple[Path, Path]) -> None:
    folder, lock = registry
    target = tmp_path / "vendor"
    fetch_assets(target, str(folder), lock=lock)
    (target / "@scope/thing/dist/thing.js").write_text("tampered")
    assert [r.status for r in fetch_assets(target, str(folder), lock=lock)] == ["fetched"]
    assert (target / "@scope/thing/dist/thing.js").read_bytes() == FILES["dist/thing.js"]


def test_integrity_mismatch_is_refused(tmp_path: Path, registry: tuple[Path, Path]) -> None:
    folder, lock = registry
    (folder / "scope-thing-1.0.0.tgz").write_bytes(_tarball({"dist/thing.js": b"evil()"}))
    with pytest.raises(AssetError, match=r"@scope/thing@1\.0\.0: integrity mismatch"):
        fetch_assets(tmp_path / "vendor", str(folder), lock=lock)
    assert not (tmp_path / "vendor" / "@scope" / "thing").exists()


def test_a_file_missing_from_the_tarball_is_an_error(
    tmp_path: Path, registry: tuple[Path, Path]
) -> None:
    folder, lock = registry
    raw = json.loads(lock.read_text())
    raw["packages"][0]["files"].append("dist/absent.js")
    lock.write_text(json.dumps(raw))
    with pytest.raises(AssetError, match=r"no file 'dist/absent\.js'"):
        fetch_assets(tmp_path / "vendor", str(folder), lock=lock)


def test_an_unreachable_source_names_the_package_and_the_remedy(
    tmp_path: Path, registry: tuple[Path, Path]
) -> None:
    _, lock = registry
    with pytest.raises(AssetError, match=r"@scope/thing@1\.0\.0: cannot read .*npm pack"):
        fetch_assets(tmp_path / "vendor", str(tmp_path / "empty"), lock=lock)


@pytest.mark.parametrize("bad", ["../escape.js", "/etc/passwd", "dist/../../x"])
def test_unsafe_paths_in_the_lock_are_refused(tmp_path: Path, bad: str) -> None:
    lock = tmp_path / "lock.json"
    package = {"name": "x", "version": "1", "integrity": "sha512-AA==", "files": [bad]}
    lock.write_text(json.dumps({"packages": [package]}))
    with pytest.raises(AssetError, match="unsafe path"):
        load_lock(lock)


def test_the_shipped_lock_pins_every_package_by_sha512() -> None:
    packages = load_lock()
    assert {p.name for p in packages} >= {
        "leaflet",
        "leaflet.vectorgrid",
        "leaflet-draw",
        "leaflet.heat",
        "leaflet.fullscreen",
        "leaflet-measure",
        "swagger-ui-dist",
    }
    for package in packages:
        assert package.integrity.startswith("sha512-")
        assert package.version.count(".") == 2 and package.version[0].isdigit()
        assert package.files


def test_registry_urls_and_pack_names() -> None:
    scoped = Package("@fortawesome/fontawesome-free", "6.2.0", "sha512-x", ())
    assert scoped.tarball_url("https://registry.npmjs.org/") == (
        "https://registry.npmjs.org/@fortawesome/fontawesome-free/-/fontawesome-free-6.2.0.tgz"
    )
    assert scoped.pack_filename == "fortawesome-fontawesome-free-6.2.0.tgz"


def test_cli_fetch_fails_with_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        assets_command,
        ["fetch", "--registry", str(tmp_path / "empty"), "--target", str(tmp_path / "vendor")],
    )
    assert result.exit_code == 1
    assert "leaflet@1.9.4: cannot read" in result.output
    assert "Traceback" not in result.output
