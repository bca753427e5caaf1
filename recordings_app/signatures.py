"""Who may talk to us: Vonage's signed webhooks and our per-call socket tokens.

Vonage signs each webhook with an HS256 JWT (claims iat, jti, iss,
payload_hash) in `Authorization: Bearer`. The signature is checked as the
official SDK checks it; the token's age, its one-time use (jti) and the hash
of the request it came with are checked here too
(../shared/vonage-protocol.md, 5).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jwt
from django.core import signing

# Vonage's clock and ours may differ a little.
CLOCK_SKEW_SECONDS = 60
# v2: tokens name the conversation too; older ones (minutes old at most) fail.
SOCKET_TOKEN_SALT = "callrecorder.audio-socket.v2"


class SignatureError(ValueError):
    """A request or socket that is not from Vonage, or not anymore; says why."""


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise SignatureError("no Authorization header: the request is not signed")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureError("the Authorization header is not a Bearer token")
    return token.strip()


def verify_vonage_jwt(
    token: str, *, secret: str, max_age: float, now: float | None = None
) -> dict[str, Any]:
    """Check a Vonage JWT's signature, age and jti; return its claims.

    The signature is checked as the SDK's `vonage_jwt.verify_signature`
    checks it (a PyJWT HS256 decode with the signature secret), once: the
    SDK allows no clock skew and returns no claims, so calling it as well
    decoded every webhook's token twice.
    """
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], leeway=CLOCK_SKEW_SECONDS
        )
    except jwt.InvalidSignatureError:
        raise SignatureError(
            "the token's signature does not match the secret"
        ) from None
    except jwt.ImmatureSignatureError:
        raise SignatureError("the token is issued in the future") from None
    except jwt.PyJWTError as error:
        raise SignatureError(f"the token is malformed or expired ({error})") from None
    issued_at = claims.get("iat")
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        raise SignatureError("the token has no iat (issued-at) claim")
    age = (time.time() if now is None else now) - issued_at
    if age > max_age:
        raise SignatureError(f"the token expired: issued {int(age)} s ago")
    if age < -CLOCK_SKEW_SECONDS:
        raise SignatureError("the token is issued in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise SignatureError("the token has no jti (token id) claim")
    return claims


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _compact_json(value: Any, *, ascii_only: bool) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def payload_hashes(
    *, method: str, body: bytes, query: Iterable[tuple[str, str]]
) -> Iterator[str]:
    """Every form of the payload Vonage may have hashed for this request,
    the likeliest first (each is only worked out if the one before failed).

    GET: the query parameters as a JSON object, in order, no whitespace.
    POST: the raw body, or the body as compact JSON (whether Vonage hashes
    the exact bytes is unconfirmed, so both are accepted).
    """
    if method == "GET":
        params = dict(query)
        for ascii_only in (True, False):
            yield _sha256(_compact_json(params, ascii_only=ascii_only))
        return
    yield _sha256(body)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return
    for ascii_only in (True, False):
        yield _sha256(_compact_json(parsed, ascii_only=ascii_only))


def check_payload_hash(claims: Mapping[str, Any], candidates: Iterable[str]) -> None:
    """The token must have been made for this very request, not another one."""
    if claims.get("payload_hash") not in candidates:
        raise SignatureError("payload_hash does not match the request: it was altered")


def socket_token(*, call_uuid: str, conversation_uuid: str) -> str:
    """A signed, timestamped token that lets one socket record one call.

    Bound to the call's leg and its conversation: a token made for a new
    call cannot add a recording to another conversation. A random part
    makes every token unique, even two for one call in the same second (a
    retried answer webhook): each can be spent once.
    """
    return signing.TimestampSigner(salt=SOCKET_TOKEN_SALT).sign_object(
        {
            "call": call_uuid,
            "conversation": conversation_uuid,
            "nonce": secrets.token_urlsafe(9),
        }
    )


def socket_token_ids(token: str, *, max_age: float) -> tuple[str, str]:
    """The call and conversation uuids a socket token was made for.

    SignatureError if it is missing, forged or too old.
    """
    if not token:
        raise SignatureError("the socket URI has no token")
    try:
        value = signing.TimestampSigner(salt=SOCKET_TOKEN_SALT).unsign_object(
            token, max_age=max_age
        )
    except signing.SignatureExpired:
        raise SignatureError("the socket token expired") from None
    except (signing.BadSignature, ValueError):
        raise SignatureError("the socket token is forged") from None
    if not isinstance(value, dict):
        raise SignatureError("the socket token is forged")
    return str(value.get("call", "")), str(value.get("conversation", ""))
