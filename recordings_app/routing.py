from django.urls import path

from . import consumers

# Channels routes cannot be reversed; the answer webhook builds the URI from this.
AUDIO_SOCKET_PATH = "/ws/audio"

websocket_urlpatterns = [
    path(AUDIO_SOCKET_PATH.lstrip("/"), consumers.RecordingConsumer.as_asgi()),
]
