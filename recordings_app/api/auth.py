"""Who an API request acts for, what its token's scope allows, how often.

A token (Authorization: Bearer) is its user, capped by its scope; a
signed-in browser session is its user too (DRF's SessionAuthentication:
CSRF checked; middleware.second_factor_first turns away a session that
owes its second factor). Either way the pages' permissions and lines
apply in the views.
"""

from __future__ import annotations

from django.core.cache import caches
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from ..addresses import client_ip
from ..models import ApiToken
from ..services import api_tokens


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer crt_…`: the token's user, the token as request.auth."""

    @method_decorator(sensitive_variables("token"))
    def authenticate(self, request):
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "bearer":
            return None  # no token: a session, or nobody
        if not token.strip():
            raise exceptions.AuthenticationFailed("The Bearer header has no token.")
        api_token = api_tokens.api_token_check(token=token.strip())
        if api_token is None:
            raise exceptions.AuthenticationFailed("Unknown, expired or revoked token.")
        if not api_token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        return api_token.user, api_token

    def authenticate_header(self, request) -> str:
        """Makes a missing or bad token a 401 that says how to authenticate."""
        return 'Bearer realm="callrecorder API"'


class TokenScope(permissions.BasePermission):
    """Signed in (token or session); a read token only reads."""

    message = "This token's scope is read: this request needs a token of scope write."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = request.auth
        if (
            isinstance(token, ApiToken)
            and request.method not in permissions.SAFE_METHODS
        ):
            return token.scope == ApiToken.Scope.WRITE
        return True


class PerTokenThrottle(throttling.SimpleRateThrottle):
    """CALLRECORDER_API_RATE requests per token (per user for a session),
    counted in the "throttle" cache: Redis, shared by every worker, in
    production."""

    scope = "token"
    cache = caches["throttle"]

    def get_ident(self, request) -> str:
        """The client's address as the access log sees it (trusted proxies
        only), not whatever X-Forwarded-For a client makes up."""
        return client_ip(request) or "unknown"

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """How the schema (and its docs' Authorize button) names token auth."""

    target_class = ApiTokenAuthentication
    name = "token"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: manage.py create_api_token, or the admin.",
        }
