"""Cursor pagination for every list of /api/v1.

A list operation takes `cursor` and `limit` from the query and answers a `Page[ItemOut]`:

    @router.get("", response=Page[HotfixOut], url_name="hotfixes")
    def hotfixes(request, paging: Query[PageQuery]):
        rows = Hotfix.objects.filter(...)
        items, next_cursor = page(rows, paging.cursor, paging.limit, key=("-opened_at", "-pk"))
        return {"items": [...], "next_cursor": next_cursor}

The client asks again with `?cursor=<next_cursor>` until `next_cursor` is null. A cursor is
opaque: the last item's key values, signed, so it cannot be forged or edited; a bad one
answers 400 `invalid_cursor`. Paging by key (not by offset) never repeats or skips an item
when rows are added meanwhile, and costs the same on the last page as on the first.
"""

from __future__ import annotations

import datetime
from typing import Generic, TypeVar

from django.core import signing
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from ninja import Field, Schema

from lifecycle.api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 1000
CURSOR_SALT = "stageboard.api.cursor"

T = TypeVar("T")


class PageQuery(Schema):
    cursor: str | None = Field(None, description="The next_cursor of the page before; none for the first")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT} items")


class Page(Schema, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Send it as ?cursor= for the next page; null on the last")


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        # DjangoJSONEncoder cuts times to milliseconds: a cursor needs the exact value to compare.
        if isinstance(o, datetime.datetime | datetime.time):
            return o.isoformat()
        return super().default(o)


class _Serializer:
    """signing's JSON, with dates, times and decimals written exactly."""

    def dumps(self, obj):
        return _Encoder(separators=(",", ":")).encode(obj).encode("latin-1")

    def loads(self, data):
        return signing.JSONSerializer().loads(data)


def page(queryset, cursor: str | None, limit: int = DEFAULT_LIMIT, key=("-pk",)):
    """The page of `queryset` after `cursor`, ordered by `key`, and the cursor of the next page or None.

    `key` lists fields as for order_by ("-" for descending), never null; together they must be
    unique, so end it with "pk" or "-pk". A cursor is only good for the key it was made with.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, "invalid_request", f"limit must be between 1 and {MAX_LIMIT}.")
    fields = [name.removeprefix("-") for name in key]
    queryset = queryset.order_by(*key)
    if cursor:
        queryset = queryset.filter(_after(key, _decode(cursor, key)))
    items = list(queryset[: limit + 1])
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    return items, _encode(key, [_value(last, field) for field in fields])


def _after(key, values) -> Q:
    """Rows strictly after `values` in the order of `key`: (a > x) or (a = x and b > y) or …"""
    condition = Q(pk__in=[])
    for index, name in enumerate(key):
        field = name.removeprefix("-")
        step = Q(**{f"{field}__{'lt' if name.startswith('-') else 'gt'}": values[index]})
        for earlier, value in zip(key[:index], values[:index], strict=True):
            step &= Q(**{earlier.removeprefix("-"): value})
        condition |= step
    return condition


def _value(item, field: str):
    value = item
    for part in field.split("__"):
        value = getattr(value, part)
    return value


def _encode(key, values: list) -> str:
    return signing.dumps([list(key), values], salt=CURSOR_SALT, serializer=_Serializer, compress=True)


def _decode(cursor: str, key) -> list:
    try:
        signed = signing.loads(cursor[:MAX_CURSOR_LENGTH], salt=CURSOR_SALT, serializer=_Serializer)
        signed_key, values = signed
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        signed_key = values = None
    if signed_key != list(key) or not isinstance(values, list) or len(cursor) > MAX_CURSOR_LENGTH:
        raise Problem(
            400, "invalid_cursor", "The cursor is not one this list gave out; start again without it."
        )
    return values
