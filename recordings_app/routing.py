"""WebSocket routes, as urls.py is for HTTP; the paths are in sockets.py."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers.audio import RecordingConsumer
from .consumers.browser_auth import SameOriginOnly
from .consumers.dashboard import CallsConsumer
from .consumers.listen import ListenConsumer
from .sockets import AUDIO_SOCKET_PATH, CALLS_SOCKET_PATH, LISTEN_SOCKET_PATH


def browser_socket(consumer):
    """Pages' sockets: the session's user, on a page of this very site.

    Not for the Vonage socket: Vonage is a server and sends no Origin.
    """
    return SameOriginOnly(AuthMiddlewareStack(consumer.as_asgi()))


websocket_urlpatterns = [
    path(AUDIO_SOCKET_PATH.lstrip("/"), RecordingConsumer.as_asgi()),
    path(CALLS_SOCKET_PATH.lstrip("/"), browser_socket(CallsConsumer)),
    path(
        LISTEN_SOCKET_PATH.lstrip("/").replace("{call_id}", "<int:call_id>"),
        browser_socket(ListenConsumer),
    ),
]
