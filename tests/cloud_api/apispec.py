"""The OpenAPI document beside the app it describes: the full cloud app, and their routes."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from cloud_sync.api import build_cloud_app
from cloud_sync.api.metrics import add_metrics_route
from cloud_sync.carriers.credentials import KeyRing, generate_key
from cloud_sync.carriers.service import Carriers, carrier_store
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.metrics import CloudMetrics
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore

METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
KEY_ID = "k1"


def load_spec() -> dict[str, Any]:
    """The document the package ships (and the API serves)."""
    text = resources.files("cloud_sync").joinpath("openapi.json").read_text("utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def key_ring() -> KeyRing:
    """A fresh one-key ring, as ``lockhub cloud init`` writes one."""
    return KeyRing.parse(f"{KEY_ID}:{generate_key()}", KEY_ID)


def full_app(
    store: CloudStore,
    service: CloudService,
    *,
    session: aiohttp.ClientSession | None = None,
    ready: dict[str, bool] | None = None,
) -> web.Application:
    """Every route the cloud serves: windows, tasks, carriers, documents, billing, webhooks,
    health, metrics and the document itself, the carrier desk built as ``cloud_sync.desk``
    builds it."""
    carriers = Carriers.build(
        carrier_store(store), CarriersSection(), ring=key_ring(), session=session,
        tasks=store.get_task,
    )  # fmt: skip
    checks = {"store": True} if ready is None else ready
    app = build_cloud_app(
        service, lambda _: None, ready=lambda: dict(checks), carriers=carriers,
        database=store.database,
    )  # fmt: skip
    add_metrics_route(app, CloudMetrics())
    return app


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves."""
    found = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        found.add((route.method, resource.canonical))
    return found


def documented(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, path template) of every operation the document describes."""
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """``node``, or what its local ``$ref`` points at."""
    while isinstance(node, dict) and "$ref" in node:
        found: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def refs(node: Any) -> list[str]:
    """Every ``$ref`` under ``node``."""
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []
