"""Risk endpoints and API keys on both stores: findings of a feature, the two lists, progress,
status changes with keys, roles, history, ETags; a live server patched over real HTTP.

The demo region (清河市) is built and analysed once into the embedded store; the PostGIS store
gets a copy of every layer. Lists are checked against ``risk.exports.select`` (the CLI export's
selection), changes against what the store holds afterwards, the OGC items and the tiles.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mapbox_vector_tile
import openpyxl
import pytest
import shapely
from click.testing import CliRunner
from conftest import filled_settings, live_server
from fastapi.testclient import TestClient
from geojson_pydantic import Feature, FeatureCollection
from pydantic import ValidationError

import geo_service.risk.rules  # noqa: F401  (registers the rule kinds)
from geo_service import keys
from geo_service.api import create_app
from geo_service.catalogue import Catalogue
from geo_service.cli import cli
from geo_service.demo import build_demo
from geo_service.keys import ApiKey, KeyConfigError, configured_keys, key_hash, new_key
from geo_service.risk.engine import analyze
from geo_service.risk.exports import ListFilter, select
from geo_service.risk.lists import history_entries
from geo_service.settings import Settings
from geo_service.store import Store, open_store
from geo_service.store.gpkg import GeoPackageStore
from geo_service.tiling.grid import TILE_MATRIX_SET

FIRST = datetime(2020, 6, 1, 8, 0, tzinfo=UTC)
ANALYST, VIEWER, ADMIN = new_key(), new_key(), new_key()
KEYS = [
    ApiKey(name="张三", role="analyst", sha256=key_hash(ANALYST)),
    ApiKey(name="viewer-bot", role="viewer", sha256=key_hash(VIEWER)),
    ApiKey(name="admin", role="admin", sha256=key_hash(ADMIN)),
]
LEAK_MARKERS = ["Traceback", "psycopg", "sqlalchemy", "SELECT"]


# -- the demo on each store -------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Path:
    folder = tmp_path_factory.mktemp("risk-demo")
    with GeoPackageStore(catalogue, folder) as store:
        build_demo(store)
        analyze(store, now=FIRST)
    return folder


@pytest.fixture(scope="module")
def gpkg_settings(demo_dir: Path) -> Settings:
    return Settings(data_dir=demo_dir, api_keys=KEYS)


@pytest.fixture(scope="module")
def postgis_settings(
    demo_dir: Path, catalogue: Catalogue, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    def copy_demo(target: Store) -> None:
        with GeoPackageStore(catalogue, demo_dir) as source:
            for layer in catalogue.vector_layers:
                frame = source.read(layer.id)
                if len(frame):
                    target.replace(layer.id, frame)

    folder = tmp_path_factory.mktemp("risk-pg")
    with filled_settings("postgis", folder, catalogue, copy_demo, api_keys=KEYS) as settings:
        yield settings


@pytest.fixture(scope="module")
def store(settings: Settings) -> Iterator[Store]:
    with open_store(settings) as store:
        yield store


def untouched(store: Store, layer_id: str = "findings", status: str = "identified") -> str:
    """An entry in ``status`` that no test has changed yet (its history has one step)."""
    frame = store.read(layer_id)
    fresh = frame[(frame["status"] == status) & (frame["history"].map(lambda h: len(h or [])) == 1)]
    assert len(fresh), f"no untouched {status} entry left in {layer_id}"
    return str(fresh["id"].iloc[0])


def entry(store: Store, item_id: str, layer_id: str = "findings") -> dict[str, Any]:
    row = store.read(layer_id, ids=[item_id])
    assert len(row) == 1
    return {"status": row["status"].iloc[0], "history": history_entries(row["history"].iloc[0])}


def patch(
    client: TestClient | httpx.Client,
    item_id: str,
    body: Any,
    key: str | None = ANALYST,
    layer_id: str = "findings",
    **headers: str,
) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    if key is not None:
        sent["X-API-Key"] = key
    return client.patch(
        f"/collections/{layer_id}/items/{item_id}", content=json.dumps(body), headers=sent
    )


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert not any(marker in response.text for marker in LEAK_MARKERS)
    detail: str = response.json()["detail"]
    return detail


# -- the two lists ----------------------------------------------------------------------------


def _admin_prefecture(store: Store) -> str:
    code = str(store.read("findings")["admin_code"].dropna().iloc[0])
    return code[:4] + "00"


FINDING_FILTERS: list[tuple[dict[str, Any], Callable[[Store], ListFilter]]] = [
    ({}, lambda s: ListFilter()),
    (
        {"status": "identified,rectifying"},
        lambda s: ListFilter(status=["identified", "rectifying"]),
    ),
    ({"status": ["rectified", "closed"]}, lambda s: ListFilter(status=["rectified", "closed"])),
    ({"risk_class": "red,orange"}, lambda s: ListFilter(risk_class=["red", "orange"])),
    ({"layer": "chemical_plants"}, lambda s: ListFilter(layer="chemical_plants")),
    ({"rule": "plant_protective_distance"}, lambda s: ListFilter(rule="plant_protective_distance")),
    ({"overdue": "true"}, lambda s: ListFilter(overdue=True)),
    (
        {"layer": "tailings_ponds", "overdue": "true", "status": "identified"},
        lambda s: ListFilter(layer="tailings_ponds", overdue=True, status=["identified"]),
    ),
]


@pytest.mark.parametrize(("params", "expected"), FINDING_FILTERS)
def test_the_findings_list_is_the_exports_selection(
    client: TestClient,
    store: Store,
    params: dict[str, Any],
    expected: Callable[[Store], ListFilter],
) -> None:
    response = client.get("/lists/findings", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    document = response.json()
    FeatureCollection.model_validate(document)
    chosen = select(store, "findings", expected(store))
    assert [f["id"] for f in document["features"]] == chosen["id"].tolist()
    assert len(store.read("findings")) == 672
    if params.get("status") != ["rectified", "closed"]:  # the demo opens every finding
        assert len(chosen), params


def test_list_filters_narrow_the_list(client: TestClient, store: Store) -> None:
    every = client.get("/lists/findings").json()["features"]
    prefecture = _admin_prefecture(store)
    area = client.get("/lists/findings", params={"admin": prefecture}).json()["features"]
    red = client.get("/lists/findings", params={"risk_class": "red"}).json()["features"]
    assert len(every) == 672
    assert 0 < len(area) <= len(every)
    assert all(f["properties"]["admin_code"].startswith(prefecture[:4]) for f in area)
    assert 0 < len(red) < len(every)
    assert {f["properties"]["risk_class"] for f in red} == {"red"}
    assert [f["id"] for f in area] == select(store, "findings", ListFilter(admin=prefecture))[
        "id"
    ].tolist()


@pytest.mark.parametrize(
    "params",
    [{}, {"layer": "chemical_plants"}, {"status": "planned"}, {"overdue": "true"}],
)
def test_the_measures_list_is_the_exports_selection(
    client: TestClient, store: Store, params: dict[str, str]
) -> None:
    document = client.get("/lists/measures", params=params).json()
    expected = ListFilter(
        layer=params.get("layer"),
        status=[params["status"]] if "status" in params else (),
        overdue="overdue" in params,
    )
    chosen = select(store, "measures", expected)
    assert len(chosen)
    assert [f["id"] for f in document["features"]] == chosen["id"].tolist()


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/lists/findings", {"status": "identified,done"}, "unknown status done"),
        ("/lists/findings", {"status": ["identified", "nope"]}, "unknown status nope"),
        ("/lists/measures", {"status": "rectifying"}, "unknown status rectifying"),
        ("/lists/findings", {"risk_class": "purple"}, "unknown risk_class purple"),
        ("/lists/measures", {"risk_class": "red"}, "measures entries have no risk_class"),
        ("/lists/findings", {"rule": "nope"}, "unknown rule 'nope'"),
        ("/lists/findings", {"layer": "x'); DROP TABLE findings; --"}, "unknown layer"),
        ("/lists/findings", {"overdue": "maybe"}, "overdue 'maybe'"),
        ("/lists/findings", {"f": "pdf"}, "f 'pdf'"),
        ("/lists/findings", {"lang": "fr"}, "lang 'fr'"),
        ("/progress", {"by": "month"}, "by 'month'"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_value(
    client: TestClient, path: str, params: dict[str, Any], words: str
) -> None:
    assert words in error(client.get(path, params=params), 400)


def test_the_findings_list_as_csv_is_a_download(client: TestClient, store: Store) -> None:
    response = client.get("/lists/findings", params={"f": "csv", "lang": "en", "overdue": "true"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and "findings-overdue-" in disposition
    assert disposition.rstrip('"').endswith(".csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["ID", "Rule"] and "Status" in rows[0]
    expected = select(store, "findings", ListFilter(overdue=True))
    assert [row[0] for row in rows[1:]] == expected["id"].tolist()


def test_the_findings_list_as_xlsx_opens_and_holds_the_rows(
    client: TestClient, store: Store
) -> None:
    response = client.get("/lists/findings", params={"f": "xlsx", "risk_class": "red"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["content-disposition"].startswith("attachment;")
    book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    assert book.sheetnames[0] == "隐患清单" and len(book.sheetnames) == 4  # + measures, progress
    rows = list(book[book.sheetnames[0]].iter_rows(values_only=True))
    assert rows[0][0] == "编号"
    expected = select(store, "findings", ListFilter(risk_class=["red"]))
    assert [row[0] for row in rows[1:]] == expected["id"].tolist()
    risk_column = rows[0].index("风险等级")
    assert {row[risk_column] for row in rows[1:]} == {"红（重大风险）"}


def test_progress_counts_every_finding(client: TestClient, store: Store) -> None:
    findings = store.read("findings")
    by_admin = client.get("/progress").json()
    assert by_admin["by"] == "admin"
    total = by_admin["total"]
    assert total["total"] == len(findings) == sum(g["total"] for g in by_admin["groups"])
    for status, count in findings["status"].value_counts().items():
        assert total[status] == count
    assert all(g["name"] for g in by_admin["groups"] if g["admin_code"])
    counts = [total[key] for key in ("identified", "closed", "total", "open", "overdue")]
    assert all(type(count) is int for count in counts)  # counts, not floats
    by_phase = client.get("/progress", params={"by": "phase"}).json()
    assert [g["phase"] for g in by_phase["groups"]] == [
        p
        for p in ("mobilise", "survey_and_fix", "concentrated_push", "consolidate")
        if p in set(findings["phase"])
    ]
    assert by_phase["total"]["total"] == len(findings)
    table = client.get("/progress", params={"by": "phase", "f": "csv", "lang": "en"})
    assert table.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Phase" and rows[-1][0] == "Total"
    assert int(rows[-1][rows[0].index("Total")]) == len(findings)


# -- findings of a feature --------------------------------------------------------------------


def test_findings_of_a_feature_as_hazard_and_as_target(client: TestClient, store: Store) -> None:
    findings = store.read("findings")
    plant = findings[findings["hazard_layer"] == "chemical_plants"]["hazard_id"].iloc[0]
    target_rows = findings[findings["target_layer"] == "protection_targets"]
    target = target_rows["target_id"].iloc[0]
    for layer_id, feature_id in (("chemical_plants", plant), ("protection_targets", target)):
        response = client.get(f"/collections/{layer_id}/items/{feature_id}/findings")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/geo+json"
        document = response.json()
        FeatureCollection.model_validate(document)
        concerned = findings[
            ((findings["hazard_layer"] == layer_id) & (findings["hazard_id"] == feature_id))
            | ((findings["target_layer"] == layer_id) & (findings["target_id"] == feature_id))
        ]
        assert len(concerned)
        assert sorted(f["id"] for f in document["features"]) == sorted(concerned["id"])
        assert document["numberReturned"] == len(concerned)


def test_a_feature_without_findings_has_none(client: TestClient, store: Store) -> None:
    findings = store.read("findings")
    named = set(findings["hazard_id"]) | set(findings["target_id"].dropna())
    quiet = next(b for b in store.read("buildings")["id"] if b not in named)
    response = client.get(f"/collections/buildings/items/{quiet}/findings")
    assert response.status_code == 200 and response.json()["features"] == []


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/collections/chemical_plants/items/nope/findings", "has no feature 'nope'"),
        ("/collections/nowhere/items/p1/findings", "unknown layer 'nowhere'"),
        ("/collections/population/items/p1/findings", "raster layer"),
    ],
)
def test_findings_of_unknown_things_are_404(client: TestClient, path: str, words: str) -> None:
    assert words in error(client.get(path), 404)


# -- keys and roles ---------------------------------------------------------------------------


def test_a_change_without_a_good_key_is_refused_and_changes_nothing(
    client: TestClient, store: Store
) -> None:
    finding = untouched(store)
    before = entry(store, finding)
    body = {"status": "rectifying"}
    missing = patch(client, finding, body, key=None)
    assert "X-API-Key" in error(missing, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = ANALYST[:-4] + ("AAAA" if not ANALYST.endswith("AAAA") else "BBBB")
    assert len(wrong) == len(ANALYST)
    refused = patch(client, finding, body, key=wrong)
    assert "not configured" in error(refused, 401)
    assert wrong not in refused.text and "www-authenticate" in refused.headers
    forbidden = patch(client, finding, body, key=VIEWER)
    assert "'viewer-bot' has role viewer; this needs analyst" in error(forbidden, 403)
    bearer_viewer = patch(client, finding, body, key=None, Authorization=f"Bearer {VIEWER}")
    error(bearer_viewer, 403)
    assert entry(store, finding) == before


def test_keys_are_compared_with_every_configured_hash_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", counting)
    assert keys.match(ANALYST, KEYS) == KEYS[0]  # the first key: the others are compared too
    assert len(compared) == len(KEYS)
    assert {b.hex() for _, b in compared} == {k.sha256 for k in KEYS}
    compared.clear()
    same_length = new_key()
    assert len(same_length) == len(ANALYST) and keys.match(same_length, KEYS) is None
    assert len(compared) == len(KEYS)
    assert keys.match("", KEYS) is None
    assert keys.match("x" * 10_000, KEYS) is None  # not hashed at all


def test_the_configuration_holds_hashes_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_keys=KEYS)
    dumped = settings.model_dump_json()
    assert all(key not in dumped for key in (ANALYST, VIEWER, ADMIN))
    assert key_hash(ANALYST) in dumped
    assert ANALYST.startswith("grk_") and len(ANALYST) >= 4 + 43  # 256 random bits


def test_keys_from_the_environment_and_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = new_key(), new_key(), new_key()
    env = [{"name": "env-key", "role": "viewer", "sha256": key_hash(first)}]
    monkeypatch.setenv("GEORISK_API_KEYS", json.dumps(env))
    toml = tmp_path / "keys.toml"
    toml.write_text(f'[[keys]]\nname = "李四"\nrole = "admin"\nsha256 = "{key_hash(second)}"\n')
    monkeypatch.setenv("GEORISK_API_KEYS_FILE", str(toml))
    found = configured_keys(Settings())
    assert [(k.name, k.role) for k in found] == [("env-key", "viewer"), ("李四", "admin")]
    assert keys.match(second, found) == found[1]
    yaml_file = tmp_path / "keys.yaml"
    yaml_file.write_text(f"keys:\n  - {{name: ops, role: analyst, sha256: {key_hash(third)}}}\n")
    monkeypatch.setenv("GEORISK_API_KEYS_FILE", str(yaml_file))
    assert [k.name for k in configured_keys(Settings())] == ["env-key", "ops"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[keys]]\nname = "a"\nrole = "root"\nsha256 = "{h}"\n', "key 1: role"),
        ('[[keys]]\nname = "a"\nrole = "viewer"\nsha256 = "{k}"\n', "key 1: sha256"),
        ('[[keys]]\nname = "a"\nrole = "viewer"\nsha256 = "{h}"\nkey = "{k}"\n', "key 1: key"),
        ("keys = 3\n", "expected a list `keys`"),
        ("[[keys]\n", "not valid TOML/YAML"),
        (
            '[[keys]]\nname = "a"\nrole = "viewer"\nsha256 = "{h}"\n'
            '[[keys]]\nname = "a"\nrole = "admin"\nsha256 = "{h}"\n',
            "'a' is configured twice",
        ),
    ],
)
def test_a_bad_key_file_stops_the_start_naming_the_entry(
    tmp_path: Path, text: str, words: str
) -> None:
    key = new_key()
    path = tmp_path / "keys.toml"
    path.write_text(text.format(h=key_hash(key), k=key))
    with pytest.raises(ValidationError) as caught:
        Settings(data_dir=tmp_path, api_keys_file=path)
    assert words in str(caught.value) and str(path) in str(caught.value)
    assert key not in str(caught.value)  # a key pasted by mistake is not repeated back
    with pytest.raises(KeyConfigError):
        configured_keys(Settings.model_construct(api_keys=[], api_keys_file=path))


def test_georisk_keys_new_prints_a_key_once_and_its_hash_line(demo_dir: Path) -> None:
    done = CliRunner().invoke(cli, ["keys", "new", "--name", "李四", "--role", "analyst"])
    assert done.exit_code == 0, done.output
    key, line = done.stdout.strip().splitlines()
    assert key.startswith("grk_")
    name, _, value = line.partition("=")
    assert name == "GEORISK_API_KEYS" and key not in line
    configured = [ApiKey.model_validate(k) for k in json.loads(value.strip("'"))]
    assert configured == [ApiKey(name="李四", role="analyst", sha256=key_hash(key))]
    toml = CliRunner().invoke(cli, ["keys", "new", "--name", "x", "--format", "toml"])
    assert 'role = "analyst"' in toml.stdout and "[[keys]]" in toml.stdout
    bad = CliRunner().invoke(cli, ["keys", "new", "--name", "a\tb"])
    assert bad.exit_code == 2 and "--name" in bad.output
    settings = Settings(data_dir=demo_dir, api_keys=configured)
    with TestClient(create_app(settings)) as client, open_store(settings) as store:
        finding = untouched(store)
        changed = patch(client, finding, {"status": "closed", "note": "重复"}, key=key)
        assert changed.status_code == 200, changed.text
        assert entry(store, finding)["history"][-1]["by"] == "李四"


def test_reads_may_require_a_key(demo_dir: Path) -> None:
    settings = Settings(data_dir=demo_dir, api_keys=KEYS, api_read_requires_key=True)
    with TestClient(create_app(settings)) as client:
        for path in ("/lists/findings", "/lists/measures", "/progress"):
            error(client.get(path), 401)
            assert client.get(path, headers={"X-API-Key": VIEWER}).status_code == 200
        assert client.get("/progress", headers={"Authorization": f"Bearer {VIEWER}"}).is_success


def test_openapi_declares_both_ways_of_sending_a_key(client: TestClient) -> None:
    spec = client.get("/api").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["scheme"] == "bearer"
    for layer_id in ("findings", "measures"):
        operation = spec["paths"][f"/collections/{layer_id}/items/{{feature_id}}"]["patch"]
        assert {"ApiKey": []} in operation["security"] and {"Bearer": []} in operation["security"]
        content = operation["requestBody"]["content"]
        assert {"application/json", "application/merge-patch+json"} <= set(content)


# -- status changes ---------------------------------------------------------------------------


def test_a_status_change_is_recorded_under_the_keys_name(
    client: TestClient, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    finding = untouched(store)
    before = client.get(f"/collections/findings/items/{finding}")
    version_before = store.data_version()
    with caplog.at_level(logging.DEBUG):
        response = patch(client, finding, {"status": "rectifying", "note": "已下达整改通知"})
    assert response.status_code == 200, response.text
    assert ANALYST not in caplog.text and ANALYST not in response.text
    assert response.headers["content-type"] == "application/geo+json"
    feature = response.json()
    Feature.model_validate(feature)
    assert feature["id"] == finding and feature["properties"]["status"] == "rectifying"
    assert response.headers["etag"] != before.headers["etag"]
    step = entry(store, finding)["history"][-1]
    assert (step["by"], step["from"], step["to"], step["note"]) == (
        "张三",
        "identified",
        "rectifying",
        "已下达整改通知",
    )
    assert entry(store, finding)["status"] == "rectifying"
    assert store.data_version() != version_before
    after = client.get(f"/collections/findings/items/{finding}")
    assert after.json()["properties"]["status"] == "rectifying"
    assert after.headers["etag"] == response.headers["etag"]
    listed = client.get(
        "/collections/findings/items", params={"status": "rectifying", "limit": 1000}
    )
    assert finding in [f["id"] for f in listed.json()["features"]]


def test_a_partial_feature_as_merge_patch_with_a_bearer_key(
    client: TestClient, store: Store
) -> None:
    finding = untouched(store)
    body = {"type": "Feature", "id": finding, "properties": {"status": "closed"}}
    response = patch(
        client,
        finding,
        body,
        key=None,
        Authorization=f"Bearer {ADMIN}",
        **{"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    step = entry(store, finding)["history"][-1]
    assert (step["by"], step["to"], step["note"]) == ("admin", "closed", None)


def test_a_move_the_workflow_forbids_is_409_naming_the_allowed_moves(
    client: TestClient, store: Store
) -> None:
    finding = untouched(store)
    detail = error(patch(client, finding, {"status": "verified"}), 409)
    assert f"{finding} is identified" in detail
    assert "rectifying or closed" in detail and "not to verified" in detail
    assert entry(store, finding)["status"] == "identified"
    closed = untouched(store)
    assert patch(client, closed, {"status": "closed"}).status_code == 200
    final = error(patch(client, closed, {"status": "rectifying"}), 409)
    assert "nowhere (it is final)" in final


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"status": "rectifying", "risk_class": "blue"}, "risk_class: cannot change here"),
        ({"status": "rectifying", "history": []}, "history: cannot change here"),
        (
            {"type": "Feature", "geometry": None, "properties": {"status": "rectifying"}},
            "geometry: cannot change here",
        ),
        ({"type": "Feature", "properties": {"status": "closed", "rule": "x"}}, "rule: cannot"),
        ({"type": "Feature", "properties": None}, "properties: expected an object"),
        ({"note": "只有备注"}, "status None"),
        ({"status": "fixed"}, "status 'fixed': a findings status is one of: identified"),
        ({"status": 3}, "status 3"),
        ({"status": "closed", "note": 7}, "note: expected text"),
        ({"status": "closed", "note": "长" * 2001}, "at most 2000 characters"),
        (["status", "closed"], "expected a JSON object"),
    ],
)
def test_a_bad_patch_is_400_naming_the_field(
    client: TestClient, store: Store, body: Any, words: str
) -> None:
    finding = untouched(store)
    assert words in error(patch(client, finding, body), 400)
    assert entry(store, finding)["status"] == "identified"


def test_a_patch_that_is_not_json_is_400(client: TestClient, store: Store) -> None:
    finding = untouched(store)
    response = client.patch(
        f"/collections/findings/items/{finding}",
        content=b"status=closed",
        headers={"X-API-Key": ANALYST, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "not JSON" in error(response, 400)


def test_an_unknown_entry_is_404_and_other_collections_cannot_be_patched(
    client: TestClient,
) -> None:
    detail = error(patch(client, "x'); DROP TABLE findings; --", {"status": "closed"}), 404)
    assert "has no feature" in detail
    assert "has no feature 'nope'" in error(
        patch(client, "nope", {"status": "closed"}, layer_id="measures"), 404
    )
    assert patch(client, "p1", {"status": "closed"}, layer_id="chemical_plants").status_code == 405


def test_if_match_guards_against_lost_updates(client: TestClient, store: Store) -> None:
    finding = untouched(store)
    etag = client.get(f"/collections/findings/items/{finding}").headers["etag"]
    first = patch(client, finding, {"status": "rectifying"}, **{"If-Match": etag})
    assert first.status_code == 200, first.text
    stale = patch(client, finding, {"status": "rectified"}, **{"If-Match": etag})
    assert "has changed since" in error(stale, 412)
    weak = patch(client, finding, {"status": "rectified"}, **{"If-Match": "W/" + etag})
    error(weak, 412)  # If-Match compares strongly
    assert entry(store, finding)["status"] == "rectifying"
    fresh = first.headers["etag"]
    listed = f'"other", {fresh}'
    assert patch(client, finding, {"status": "rectified"}, **{"If-Match": listed}).is_success
    assert patch(client, finding, {"status": "verified"}, **{"If-Match": "*"}).is_success
    steps = [(s["from"], s["to"]) for s in entry(store, finding)["history"][1:]]
    assert steps == [
        ("identified", "rectifying"),
        ("rectifying", "rectified"),
        ("rectified", "verified"),
    ]


def test_measures_follow_their_own_workflow(client: TestClient, store: Store) -> None:
    measure = untouched(store, "measures", "planned")
    started = patch(client, measure, {"status": "in_progress"}, layer_id="measures")
    assert started.status_code == 200, started.text
    assert started.json()["properties"]["status"] == "in_progress"
    step = entry(store, measure, "measures")["history"][-1]
    assert (step["by"], step["from"], step["to"]) == ("张三", "planned", "in_progress")
    back = error(patch(client, measure, {"status": "planned"}, layer_id="measures"), 409)
    assert "can move to done or closed, not to planned" in back
    assert "status 'verified'" in error(
        patch(client, measure, {"status": "verified"}, layer_id="measures"), 400
    )


def test_tiles_show_the_new_status(client: TestClient, store: Store) -> None:
    finding = untouched(store)
    row = store.read("findings", ids=[finding])
    lon, lat = shapely.get_coordinates(row.geometry.iloc[0].representative_point())[0]
    tile = TILE_MATRIX_SET.tile(lon, lat, 16)
    url = f"/collections/findings/tiles/WebMercatorQuad/16/{tile.y}/{tile.x}"
    before = client.get(url, params={"properties": "status"})
    assert _tile_status(before.content, finding) == "identified"
    assert patch(client, finding, {"status": "rectifying"}).status_code == 200
    after = client.get(
        url, params={"properties": "status"}, headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
    assert _tile_status(after.content, finding) == "rectifying"


def _tile_status(data: bytes, finding: str) -> str:
    decoded = mapbox_vector_tile.decode(data)
    (props,) = [
        f["properties"] for f in decoded["findings"]["features"] if f["properties"]["id"] == finding
    ]
    status: str = props["status"]
    return status


# -- a real HTTP client against a live server -------------------------------------------------


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    with live_server(create_app(settings)) as url:
        yield url


def test_httpx_patches_a_live_server(server: str, store: Store) -> None:
    finding = untouched(store)
    with httpx.Client(base_url=server, timeout=30) as http:
        read = http.get(f"/collections/findings/items/{finding}")
        assert read.status_code == 200
        refused = patch(http, finding, {"status": "rectifying"}, key=None)
        assert refused.status_code == 401 and "www-authenticate" in refused.headers
        changed = patch(
            http,
            finding,
            {"status": "rectifying", "note": "现场核查"},
            **{"If-Match": read.headers["etag"]},
        )
        assert changed.status_code == 200, changed.text
        again = http.get(f"/collections/findings/items/{finding}")
    assert again.json()["properties"]["status"] == "rectifying"
    assert again.headers["etag"] == changed.headers["etag"] != read.headers["etag"]
    assert entry(store, finding)["history"][-1]["note"] == "现场核查"
