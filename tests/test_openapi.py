"""The OpenAPI document at ``/api`` documents every operation, parameter and body field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geo_service.api import create_app
from geo_service.settings import Settings

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    with TestClient(create_app(settings)) as client:
        yield client.get("/api").json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def _schema(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def test_every_operation_says_what_it_does(spec: dict[str, Any]) -> None:
    unexplained = [
        name for name, op in _operations(spec) if not (op.get("summary") and op.get("description"))
    ]
    assert not unexplained


def test_every_parameter_is_described(spec: dict[str, Any]) -> None:
    undocumented = [
        f"{name}: {param['name']}"
        for name, op in _operations(spec)
        for param in op.get("parameters", [])
        if not param.get("description")
    ]
    assert not undocumented


def test_every_request_body_field_is_described(spec: dict[str, Any]) -> None:
    undocumented = []
    for name, op in _operations(spec):
        for media in op.get("requestBody", {}).get("content", {}).values():
            schema = _schema(spec, media.get("schema", {}))
            for field, prop in schema.get("properties", {}).items():
                if not (prop.get("description") or _schema(spec, prop).get("description")):
                    undocumented.append(f"{name}: {field}")
    assert not undocumented


def test_the_spec_is_served_where_ogc_clients_look(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "georisk"
    assert len(spec["paths"]) >= 20
