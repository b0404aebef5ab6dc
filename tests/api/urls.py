"""An API built like /api/v1 (config.api.new_api) with a JSON operation, for the tests of its edges.

The real API has no operation taking a JSON body yet; this one shows how every future one answers
malformed JSON, a wrong content type and a body that does not match the schema.
"""

from django.urls import include, path
from ninja import Query, Router, Schema, Status

from config.api import new_api, url_patterns
from lifecycle.api.paging import Page, PageQuery, page
from lifecycle.api.problems import Problem
from lifecycle.models import Environment

router = Router()


class NoteIn(Schema):
    text: str
    count: int


class EnvironmentOut(Schema):
    name: str
    position: int


@router.post("/notes", response={201: NoteIn}, url_name="notes")
def create_note(request, note: NoteIn):
    if note.count < 0:
        raise Problem(409, "negative_count", "A count is never negative.", findings=[{"code": "negative"}])
    return Status(201, note)


@router.get("/environments", response=Page[EnvironmentOut], url_name="environments")
def environments(request, paging: Query[PageQuery]):
    items, next_cursor = page(Environment.objects.all(), paging.cursor, paging.limit, key=("position", "pk"))
    return {"items": items, "next_cursor": next_cursor}


@router.get("/broken", url_name="broken")
def broken(request):
    raise RuntimeError("secret internals")


api = new_api(urls_namespace="test-api")
api.add_router("/", router)

urlpatterns = [path("api/v1/", include((url_patterns(api), "test-api")))]
