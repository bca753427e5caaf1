from django.urls import path

from .views import health, media, pages, webhooks

app_name = "recordings"

urlpatterns = [
    path("", pages.call_list, name="call_list"),
    path("favicon.ico", pages.favicon, name="favicon"),
    path("calls/<int:pk>/", pages.call_detail, name="call_detail"),
    path("calls/<int:pk>/row", pages.call_row, name="call_row"),
    path("calls/<int:pk>/pause", pages.call_pause, name="call_pause"),
    path("calls/<int:pk>/legal-hold", pages.call_legal_hold, name="call_legal_hold"),
    path("calls/uuid/<str:uuid>/", pages.call_by_uuid, name="call_by_uuid"),
    path("recordings/<int:pk>/audio", media.recording_media, name="recording_media"),
    path(
        "recordings/<int:pk>/delete",
        pages.recording_delete,
        name="recording_delete",
    ),
    path(
        "recordings/<int:pk>/download.wav",
        media.recording_download,
        name="recording_download",
    ),
    path(
        "recordings/<int:pk>/original",
        media.recording_original,
        name="recording_original",
    ),
    path("webhooks/answer", webhooks.answer_webhook, name="answer_webhook"),
    path("webhooks/event", webhooks.event_webhook, name="event_webhook"),
    # Health and metrics
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_page, name="metrics"),
]
