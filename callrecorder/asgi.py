"""ASGI entry point: HTTP goes to Django, WebSockets to the Channels routes."""

import gc
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


# The garbage collector, tuned for a worker that allocates fast (a burst of
# calls is thousands of requests and frames a second) and holds little
# cyclic garbage. What is loaded by now (modules, settings, URL patterns,
# the app: ~140,000 objects) lives as long as the process: frozen, a full
# collection no longer walks it. And the youngest generation is collected
# after 20,000 new objects rather than 700: most die young anyway, and at
# 100 calls a second the defaults spent ~15% of the worker's core in the
# collector, in pauses of up to 300 ms that every call waited through
# (bench/cps.py, issue 16; 40 calls/s: p99 answer 291 -> 76 ms).
gc.freeze()
gc.set_threshold(20_000, 10, 10)
