"""Who may open the audio socket: a fresh, unused token made for its call."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from .. import signatures
from ..addresses import UNSIGNED_REFUSED, names_forwarding, unsigned_allowed_from
from ..services import access
from ..sockets import (
    CLOSE_BAD_REQUEST,
    CLOSE_TOKEN_REUSED,
    CLOSE_UNAUTHORIZED,
    CLOSE_WRONG_CALL,
)
from ..vonage import InvalidWebhook, clean_id


class SocketRefused(Exception):
    """Why a socket may not record: a close code and a reason for the log."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SocketCall:
    """The call a socket's URI names, as its token vouches for."""

    call_uuid: str
    conversation_uuid: str


def header(scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key.decode("latin-1").lower() == name:
            return value.decode("latin-1")
    return None


async def authenticate(scope) -> SocketCall:
    """The URI's token must be ours, fresh, unused and made for this call.

    Raises SocketRefused with the close code to use.
    """
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        call_uuid = clean_id(query.get("uuid", [""])[0], "uuid")
        conversation_uuid = clean_id(
            query.get("conversation_uuid", [""])[0],
            "conversation_uuid",
            required=False,
        )
    except InvalidWebhook as error:
        raise SocketRefused(CLOSE_BAD_REQUEST, str(error)) from None
    if not settings.VONAGE_SIGNATURE_SECRET:
        client = scope.get("client") or [None]
        forwarded = names_forwarding(
            name.decode("latin-1") for name, _ in scope.get("headers", [])
        )
        if not unsigned_allowed_from(peer=client[0], forwarded=forwarded):
            raise SocketRefused(CLOSE_UNAUTHORIZED, UNSIGNED_REFUSED)
    token = query.get("token", [""])[0]
    try:
        token_call, token_conversation = signatures.socket_token_ids(
            token, max_age=settings.CALLRECORDER_SOCKET_TOKEN_MAX_AGE
        )
        if settings.VONAGE_SIGNATURE_SECRET:
            claims = signatures.verify_vonage_jwt(
                signatures.bearer_token(header(scope, "authorization")),
                secret=settings.VONAGE_SIGNATURE_SECRET,
                max_age=settings.VONAGE_SIGNATURE_MAX_AGE,
            )
    except signatures.SignatureError as error:
        raise SocketRefused(CLOSE_UNAUTHORIZED, str(error)) from None
    if token_call != call_uuid:
        raise SocketRefused(CLOSE_WRONG_CALL, "the token was made for another call")
    if conversation_uuid and conversation_uuid != token_conversation:
        raise SocketRefused(
            CLOSE_WRONG_CALL, "the token was made for another conversation"
        )
    # Each one-time token is remembered as long as it could pass its age
    # check. A Vonage JWT shares its key with the webhooks': one token,
    # one use, wherever it is presented.
    uses = {f"socket:{token}": settings.CALLRECORDER_SOCKET_TOKEN_MAX_AGE}
    if settings.VONAGE_SIGNATURE_SECRET:
        uses[f"jwt:{claims['jti']}"] = settings.VONAGE_SIGNATURE_MAX_AGE
    valid_for = {
        key: max_age + signatures.CLOCK_SKEW_SECONDS for key, max_age in uses.items()
    }
    if not await database_sync_to_async(access.tokens_use)(valid_for=valid_for):
        raise SocketRefused(CLOSE_TOKEN_REUSED, "the token was used before")
    return SocketCall(call_uuid=call_uuid, conversation_uuid=token_conversation)
