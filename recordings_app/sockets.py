"""The WebSocket paths and close codes, in one place.

Channels routes cannot be reversed: routing, the answer webhook and the
pages all build socket URIs from these paths. Close codes 4000-4999 are the
application's own; the README's "Who gets in" lists the same ones.
"""

from __future__ import annotations

AUDIO_SOCKET_PATH = "/ws/audio"
CALLS_SOCKET_PATH = "/ws/calls"
LISTEN_SOCKET_PATH = "/ws/calls/{call_id}/listen"

# The Vonage audio socket.
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401  # token missing, forged or expired; bad Vonage JWT
CLOSE_WRONG_CALL = 4403  # the token was made for another call
CLOSE_CALL_TOO_LONG = 4408  # CALLRECORDER_MAX_CALL_SECONDS reached
CLOSE_TOKEN_REUSED = 4409  # the token has been used by an earlier socket
CLOSE_NOT_CONNECTED = 4410  # no websocket:connected in time: the slot is freed
CLOSE_UNSUPPORTED_AUDIO = 4415
CLOSE_TOO_MANY_SOCKETS = 4429  # CALLRECORDER_MAX_SOCKETS reached in this process
CLOSE_FRAME_TOO_BIG = 1009  # the standard "message too big"
CLOSE_STORAGE_FAILED = 1011  # the standard "internal error": the spool failed

# Browser sockets: CLOSE_UNAUTHORIZED (not signed in, or signed out since),
# and these.
CLOSE_FORBIDDEN = 4403  # listen-in is for staff
CLOSE_NOT_LIVE = 4404  # no call in progress by that id
