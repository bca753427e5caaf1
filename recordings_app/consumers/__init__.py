"""The WebSocket consumers: only routing, the work is in services and live.

audio (the Vonage socket: frames to the spool, the rest to services),
presence (that socket's live side: dashboards, pause, listen-in),
dashboard and listen (the browser sockets), vonage_auth and browser_auth
(who may open them), tasks (work a socket does not wait for).
"""
