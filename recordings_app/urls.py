from django.urls import path

from . import views

app_name = "recordings"

urlpatterns = [
    path("", views.call_list, name="call_list"),
    path("calls/<int:pk>/", views.call_detail, name="call_detail"),
    path("calls/<int:pk>/row", views.call_row, name="call_row"),
    path("calls/<int:pk>/pause", views.call_pause, name="call_pause"),
    path("calls/<int:pk>/legal-hold", views.call_legal_hold, name="call_legal_hold"),
    path("calls/uuid/<str:uuid>/", views.call_by_uuid, name="call_by_uuid"),
    path(
        "recordings/<int:pk>/audio.wav", views.recording_media, name="recording_media"
    ),
    path(
        "recordings/<int:pk>/delete",
        views.recording_delete,
        name="recording_delete",
    ),
    path(
        "recordings/<int:pk>/download",
        views.recording_download,
        name="recording_download",
    ),
    path("webhooks/answer", views.answer_webhook, name="answer_webhook"),
    path("webhooks/event", views.event_webhook, name="event_webhook"),
]
