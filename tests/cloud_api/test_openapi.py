"""The served OpenAPI 3.1 document: valid JSON, every route and only those, refs resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

import cloud_sync
from cloud_sync.api import build_cloud_app
from cloud_sync.api.models import CourierIn, WindowRequest

from .conftest import Cloud

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    return {(route.method, route.resource.canonical) for route in app.router.routes()}  # type: ignore[union-attr]


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


async def test_the_document_lists_every_route_served(cloud: Cloud) -> None:
    response = await cloud.client.get("/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    spec = json.loads(await response.read())
    assert spec["openapi"].startswith("3.1.")
    app = build_cloud_app(cloud.service, lambda _: None, ready=dict)
    assert documented(spec) == served(app)
    for path, item in spec["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        params = item.get("parameters", [])
        assert {p["name"] for p in params if p["in"] == "path"} == names, path
        tenant_path = "tenant" in names
        for method in METHODS & set(item):
            operation = item[method]
            assert ("security" not in operation) == tenant_path, (method, path)
            assert ("401" in operation["responses"]) == tenant_path, (method, path)


def test_every_reference_resolves_and_the_request_schema_matches_the_model() -> None:
    spec = json.loads((Path(cloud_sync.__file__).parent / "openapi.json").read_text())
    for ref in refs(spec):
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    models: list[tuple[type[BaseModel], str]] = [
        (WindowRequest, "WindowRequest"),
        (CourierIn, "Courier"),
    ]
    for model, name in models:
        schema = spec["components"]["schemas"][name]
        assert set(schema["properties"]) == set(model.model_fields), name
        required = {key for key, info in model.model_fields.items() if info.is_required()}
        assert set(schema["required"]) == required, name
        assert schema["additionalProperties"] is False
