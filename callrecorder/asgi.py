"""ASGI entry point: HTTP goes to Django, WebSockets to the Channels routes."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callrecorder.settings")
django.setup(set_prefix=False)  # as get_asgi_application(), with our handler

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from recordings_app.handlers import HttpHandler  # noqa: E402
from recordings_app.routing import websocket_urlpatterns  # noqa: E402

# The Vonage audio socket is not wrapped in an Origin check: Vonage is a
# server, sends no Origin, and an Origin check would refuse it.
# The pages' sockets are wrapped one by one in routing.py.
application = ProtocolTypeRouter(
    {
        "http": HttpHandler(),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
