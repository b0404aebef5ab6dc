"""The OpenAPI schema at /api/v1/openapi.json: valid OpenAPI 3, public, and every operation documented."""

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def schema(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_it_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_it_needs_no_token_and_names_the_token_scheme(schema):
    schemes = schema["components"]["securitySchemes"]
    assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]


def operations(schema):
    for path, item in schema["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "patch", "delete", "head"}:
                yield method.upper(), path


def documented_form(path: str) -> str:
    """The path as docs/api.md writes it: {module_name} → <module>, {number} → <number>."""
    return re.sub(r"\{(\w+?)(?:_name)?\}", r"<\1>", path)


def undocumented(schema, docs: str) -> list[str]:
    return [
        f"{method} {documented_form(path)}"
        for method, path in operations(schema)
        if f"`{method} {documented_form(path)}`" not in docs
    ]


def test_every_operation_is_documented_in_docs_api_md(schema):
    assert list(operations(schema)), "the schema lists no operation"
    missing = undocumented(schema, DOCS.read_text())
    assert not missing, f"docs/api.md does not document: {missing}"


def test_the_check_catches_an_undocumented_operation():
    from tests.api.urls import api

    schema = api.get_openapi_schema(path_prefix="/api/v1/")
    assert "POST /api/v1/notes" in undocumented(schema, DOCS.read_text())
    assert documented_form("/api/v1/modules/{module_name}/versions/{number}/archive") == (
        "/api/v1/modules/<module>/versions/<number>/archive"
    )


def test_the_zip_bodies_and_answers_are_described(schema):
    publish = schema["paths"]["/api/v1/modules/{module_name}/environments/{environment_name}/versions"][
        "post"
    ]
    assert "application/zip" in publish["requestBody"]["content"]
    archive = schema["paths"]["/api/v1/modules/{module_name}/versions/{number}/archive"]["get"]
    assert "application/zip" in archive["responses"]["200"]["content"]


def test_the_refusals_are_described_as_problems(schema):
    state = schema["paths"]["/api/v1/applications/{application_name}"]["get"]["responses"]
    for status in ("401", "403", "404", "422"):
        assert list(state[status]["content"]) == ["application/problem+json"]
    assert list(state["200"]["content"]) == ["application/json"]
