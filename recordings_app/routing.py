from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from . import consumers

# Channels routes cannot be reversed; the answer webhook and the pages build
# the URIs from these.
AUDIO_SOCKET_PATH = "/ws/audio"
CALLS_SOCKET_PATH = "/ws/calls"
LISTEN_SOCKET_PATH = "/ws/calls/{call_id}/listen"


def browser_socket(consumer):
    """Pages' sockets: the session's user, and an Origin of one of our hosts.

    Not for the Vonage socket: Vonage is a server and sends no Origin.
    """
    return AllowedHostsOriginValidator(AuthMiddlewareStack(consumer.as_asgi()))


websocket_urlpatterns = [
    path(AUDIO_SOCKET_PATH.lstrip("/"), consumers.RecordingConsumer.as_asgi()),
    path(CALLS_SOCKET_PATH.lstrip("/"), browser_socket(consumers.CallsConsumer)),
    path(
        LISTEN_SOCKET_PATH.lstrip("/").replace("{call_id}", "<int:call_id>"),
        browser_socket(consumers.ListenConsumer),
    ),
]
