"""Cursor pages over the list's sorts that neither repeat nor skip a call.

The cursor holds the last call's values of the sort (the id last, so each
position is one call), and the next page is the calls after it: ties, as
many as there are, and calls arriving meanwhile change nothing. (DRF's
CursorPagination goes by one field and an offset for ties, capped at
1,000: a sort by caller or length over more ties than that never ends.)
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

# Each sort: (field, descending) pairs, ending with the id. "length" is the
# call's duration, -1 when unknown (annotated by the view).
ORDERINGS = {
    "newest": (("started_at", True), ("id", True)),
    "oldest": (("started_at", False), ("id", False)),
    "longest": (("length", True), ("id", True)),
    "caller": (("from_number", False), ("started_at", True), ("id", True)),
}
_TYPES = {"started_at": datetime, "id": int, "length": int, "from_number": str}


def _invalid(why: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({"cursor": [why]})


class KeysetCursor(pagination.BasePagination):
    """`?cursor=` from the previous page's `next`; `page_size` up to 200."""

    page_size = 50
    max_page_size = 200

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.request, self.sort = request, view.sort
        ordering = ORDERINGS[self.sort]
        size = self._page_size(request)
        if cursor := request.query_params.get("cursor"):
            queryset = queryset.filter(self._after(ordering, self._decode(cursor)))
        order = [f"-{name}" if down else name for name, down in ordering]
        rows = list(queryset.order_by(*order)[: size + 1])
        self.next_values = None
        if len(rows) > size:
            rows = rows[:size]
            self.next_values = [getattr(rows[-1], name) for name, _ in ordering]
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response(OrderedDict([("next", self._next_link()), ("results", data)]))

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "From the previous page's next.",
                "schema": {"type": "string"},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "maximum": self.max_page_size},
            },
        ]

    def _page_size(self, request) -> int:
        try:
            asked = int(request.query_params.get("page_size", self.page_size))
        except ValueError:
            return self.page_size
        return max(1, min(asked, self.max_page_size))

    @staticmethod
    def _after(ordering, values) -> Q:
        """The rows after `values`: greater on the first field, or equal on
        it and greater on the next, and so on (less, where descending)."""
        after, same = Q(), {}
        for (name, down), value in zip(ordering, values, strict=True):
            after |= Q(**same, **{f"{name}__{'lt' if down else 'gt'}": value})
            same[name] = value
        return after

    def _next_link(self) -> str | None:
        if self.next_values is None:
            return None
        text = json.dumps(
            {"sort": self.sort, "after": self.next_values}, default=datetime.isoformat
        )
        cursor = base64.urlsafe_b64encode(text.encode()).decode()
        return replace_query_param(self.request.build_absolute_uri(), "cursor", cursor)

    def _decode(self, cursor: str) -> list:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            sort, values = decoded["sort"], decoded["after"]
        except (ValueError, TypeError, KeyError):
            raise _invalid("Not a cursor: use the next link as given.") from None
        if sort != self.sort:
            raise _invalid(f"A cursor of sort={sort!r}, not {self.sort!r}.")
        ordering = ORDERINGS[self.sort]
        if not isinstance(values, list) or len(values) != len(ordering):
            raise _invalid("Not a cursor: use the next link as given.")
        return [
            self._typed(name, value)
            for (name, _), value in zip(ordering, values, strict=True)
        ]

    @staticmethod
    def _typed(name: str, value):
        kind = _TYPES[name]
        if kind is datetime:
            moment = parse_datetime(value) if isinstance(value, str) else None
            if moment is None:
                raise _invalid("Not a cursor: use the next link as given.")
            return moment
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str) and "\x00" not in value:
            return value
        raise _invalid("Not a cursor: use the next link as given.")
