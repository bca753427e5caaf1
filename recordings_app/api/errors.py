"""One JSON error body for every refusal of the API, whatever raised it."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from rest_framework import exceptions
from rest_framework.views import exception_handler


def json_error(exc, context):
    """{"status": 404, "code": "not_found", "detail": "…"}, plus "fields"
    (what is wrong with each) for a request that did not validate."""
    response = exception_handler(exc, context)
    if response is None:
        return None  # not a refusal but a fault: Django's 500 handling
    if isinstance(exc, exceptions.ValidationError):
        body = {
            "status": response.status_code,
            "code": "invalid",
            "detail": "The request is not valid: see fields.",
            "fields": response.data,
        }
    else:
        detail = (
            response.data.get("detail", "") if isinstance(response.data, dict) else ""
        )
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        body = {"status": response.status_code, "code": code, "detail": str(detail)}
    response.data = body
    return response


def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any path under /api/v1/ that is not an endpoint."""
    return JsonResponse(
        {
            "status": 404,
            "code": "not_found",
            "detail": f"No API endpoint at {request.path}: see {reverse('api:docs')}.",
        },
        status=404,
    )


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["status", "code", "detail"],
    "properties": {
        "status": {"type": "integer"},
        "code": {"type": "string", "example": "not_found"},
        "detail": {"type": "string"},
        "fields": {
            "type": "object",
            "description": "What is wrong with each field (400 only).",
            "additionalProperties": True,
        },
    },
}
_REFUSALS = {
    "400": "The request is not valid: see fields.",
    "401": "No token, or an unknown, expired or revoked one.",
    "403": "Not permitted: the token's scope or the user's permissions.",
    "404": "No such call or recording (or one of another team's lines).",
    "429": "Too many requests for this token: see Retry-After.",
}


def error_responses(result, generator, request, public):
    """drf-spectacular hook: every operation documents the JSON refusals."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
        _ERROR_SCHEMA
    )
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for code, why in _REFUSALS.items():
                operation["responses"].setdefault(
                    code, {"description": why, "content": body}
                )
    return result
