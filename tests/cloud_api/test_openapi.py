"""The served OpenAPI 3.1 document: valid, every route of the full app and only those, request
bodies exactly the models' schemas, every error the boundary answers declared."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from pydantic import BaseModel

from cloud_sync.api.models import WindowRequest
from cloud_sync.api.webhooks import EndpointIn, EndpointPatch
from cloud_sync.carriers.views import PartnerIn, PartnerPatch, RateShopIn

from .apispec import METHODS, documented, full_app, load_spec, refs, resolve, served
from .conftest import Cloud

# Request bodies and the component each one is described by (nested models by their names).
MODELS: list[type[BaseModel]] = [
    WindowRequest, PartnerIn, PartnerPatch, RateShopIn, EndpointIn, EndpointPatch,
]  # fmt: skip
# Every tenant route may answer these: no key, not this tenant's, over the rate, no database.
TENANT_ERRORS = {"401", "404", "429", "503"}
# Routes that call a carrier answer its failures (see cloud_sync/api/carriers.py).
CARRIER_ERRORS = {"409", "422", "502", "503", "504"}
# Carriers call these (no tenant key): their answers are about the signature over the body.
WEBHOOKS_IN = {("POST", "/v1/webhooks/uber-direct/{partner_id}")}
CARRIER_CALLS = {
    ("POST", "/v1/{tenant}/offers/{offer_id}/accept"),
    ("POST", "/v1/{tenant}/carrier-jobs/{job_id}/refresh"),
    ("POST", "/v1/{tenant}/carrier-jobs/{job_id}/cancel"),
}
DOWNLOADS = {
    "/v1/{tenant}/carrier-jobs/{job_id}/label": {"application/pdf", "application/zpl"},
    "/v1/{tenant}/carrier-jobs/{job_id}/manifest": {"text/csv", "application/pdf"},
    "/v1/{tenant}/manifests": {"text/csv", "application/pdf"},
    "/v1/{tenant}/billing/export": {"text/csv", "application/jsonl"},
}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(METHOD, path, path item, operation) for every operation."""
    return [
        (method.upper(), path, item, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def without_titles(node: Any) -> Any:
    """A pydantic schema as the document writes it: no titles, JsonValue inlined as ``{}``."""
    if isinstance(node, dict):
        if node.get("$ref") == "#/components/schemas/JsonValue":
            return {}
        return {key: without_titles(value) for key, value in node.items() if key != "title"}
    if isinstance(node, list):
        return [without_titles(value) for value in node]
    return node


async def test_the_api_serves_the_shipped_document(cloud: Cloud) -> None:
    response = await cloud.client.get("/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert json.loads(await response.read()) == load_spec()


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(spec).validate()
    broken = copy.deepcopy(spec)
    broken["paths"]["/healthz"]["get"]["responses"] = "none"
    with pytest.raises(jsonschema_rs.ValidationError):  # the validator does look
        schemathesis.openapi.from_dict(broken).validate()


def test_every_schema_compiles_and_every_reference_resolves() -> None:
    spec = load_spec()
    for ref in refs(spec):
        assert resolve(spec, {"$ref": ref}) is not None, ref
    for name in spec["components"]["schemas"]:
        # Compiling checks keywords and patterns (ECMA 262) and resolves the refs inside.
        jsonschema_rs.validator_for(
            {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        )


async def test_the_document_lists_every_route_of_the_full_app(cloud: Cloud) -> None:
    app = full_app(cloud.service.store, cloud.service)
    spec = load_spec()
    assert documented(spec) == served(app)


def test_path_parameters_security_and_errors_are_declared() -> None:
    spec = load_spec()
    for method, path, item, operation in operations(spec):
        where = (method, path)
        names = set(re.findall(r"\{(\w+)\}", path))
        params = [resolve(spec, p) for p in item.get("parameters", [])]
        assert {p["name"] for p in params if p["in"] == "path"} == names, where
        assert all(p["required"] for p in params if p["in"] == "path"), where
        codes = set(operation["responses"])
        if where in WEBHOOKS_IN:
            assert operation["security"] == [], where
            assert codes == {"200", "400", "401", "404", "413"}, where
            continue
        if "tenant" not in names:  # health, readiness, metrics, this document
            assert operation["security"] == [], where
            assert not codes & TENANT_ERRORS - {"503"}, where
            continue
        assert "security" not in operation, where  # the document's default: bearer
        assert codes >= TENANT_ERRORS, where
        query = [resolve(spec, p) for p in operation.get("parameters", [])]
        if "requestBody" in operation or query:
            assert "400" in codes, where
        if "requestBody" in operation:
            assert "413" in codes, where
        if where in CARRIER_CALLS:
            assert codes >= CARRIER_ERRORS, where
        unauthorized = resolve(spec, operation["responses"]["401"])
        assert "WWW-Authenticate" in unauthorized["headers"]
        for code in ("429", "503"):
            assert "Retry-After" in resolve(spec, operation["responses"][code])["headers"]


def test_downloads_declare_their_media_types() -> None:
    spec = load_spec()
    for path, media in DOWNLOADS.items():
        ok = spec["paths"][path]["get"]["responses"]["200"]
        assert set(ok["content"]) == media, path
        assert "Content-Disposition" in ok["headers"], path


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_request_bodies_are_the_models_schemas(model: type[BaseModel]) -> None:
    spec = load_spec()
    schemas = spec["components"]["schemas"]
    generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, nested in generated.pop("$defs", {}).items():
        if name != "JsonValue":
            assert schemas[name] == without_titles(nested), name
    assert schemas[model.__name__] == without_titles(generated)
    assert schemas[model.__name__]["additionalProperties"] is False
