"""/api/v1: the one NinjaAPI, assembled from each resource's router, and its URLs.

This is the composition root: it may import the routers of every app (lifecycle today,
hotfixes next), which never import each other's API. config/urls.py includes `urlpatterns`
under /api/v1/ in the "api" namespace: the agent protocol first (hand-written, its own
contract: lifecycle/agent_urls.py), then the ninja operations and /api/v1/openapi.json, then
a problem+json 404 for anything else.

No interactive docs page: ninja's loads its scripts from a CDN, which the Content-Security-
Policy forbids (docs/api.md says where the schema is instead).
"""

from __future__ import annotations

import json

from django.urls import URLPattern, path, re_path
from ninja import NinjaAPI
from ninja.parser import Parser

from lifecycle import agent_urls
from lifecycle.api import applications, modules, problems
from lifecycle.api.auth import token_auth

DESCRIPTION = (
    "Stageboard's API for scripts and CI, with the console's rules and access checks. "
    "Authenticate with a personal token: `Authorization: Bearer sb_…`. Errors are RFC 9457 "
    "problems (`application/problem+json`) with a stable `code`; lists are paged with cursors. "
    "See docs/api.md."
)


class JsonParser(Parser):
    """JSON bodies only when they say so: another Content-Type is 415, not a guess."""

    def parse_body(self, request):
        content_type = request.content_type.lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise problems.Problem(
                415,
                "unsupported_media_type",
                f"Send the body as JSON, with 'Content-Type: application/json', not {content_type!r}.",
            )
        return json.loads(request.body)


class StageboardAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs):
        schema = super().get_openapi_schema(**kwargs)
        # Ninja writes every schema'd answer as application/json; problems are problem+json.
        for item in schema["paths"].values():
            for operation in item.values():
                for answer in operation.get("responses", {}).values():
                    content = answer.get("content", {})
                    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                    if ref.endswith("/ProblemOut"):
                        content[problems.CONTENT_TYPE] = content.pop("application/json")
        return schema


def new_api(**options) -> NinjaAPI:
    """A NinjaAPI with Stageboard's token authentication, JSON parsing and problem answers."""
    api = StageboardAPI(
        title="Stageboard API",
        version="1",
        description=DESCRIPTION,
        auth=token_auth,
        parser=JsonParser(),
        docs_url=None,
        openapi_url="/openapi.json",
        **options,
    )
    problems.install(api)
    return api


def url_patterns(api: NinjaAPI) -> list:
    """The API's URLs fit for the console's middleware, and a problem 404 for every other path."""
    patterns, _, _ = api.urls
    result = []
    for pattern in patterns:
        if pattern.name == "api-root":
            # The root names the path prefix of the schema; there is nothing to see there.
            result.append(path("", problems.not_found, name="api-root"))
        else:
            assert isinstance(pattern, URLPattern)
            pattern.callback = problems.api_view(pattern.callback)
            result.append(pattern)
    result.append(re_path(r"^(?P<path>.*)$", problems.not_found, name="not-found"))
    return result


api = new_api(urls_namespace="api")
api.add_router("/modules", modules.router)
api.add_router("/applications", applications.router)

urlpatterns = [*agent_urls.urlpatterns, *url_patterns(api)]
