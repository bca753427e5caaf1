from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from . import views
from .errors import not_found

app_name = "api"

urlpatterns = [
    path("", views.Root.as_view(), name="root"),
    path("calls", views.CallList.as_view(), name="calls"),
    path("calls/live", views.LiveCalls.as_view(), name="live_calls"),
    path("calls/<int:pk>", views.CallDetail.as_view(), name="call"),
    path("calls/<int:pk>/legal-hold", views.LegalHold.as_view(), name="legal_hold"),
    path("recordings/<int:pk>", views.RecordingDetail.as_view(), name="recording"),
    path(
        "recordings/<int:pk>/audio.wav",
        views.RecordingAudio.as_view(),
        name="recording_audio",
    ),
    path(
        "schema",
        SpectacularAPIView.as_view(permission_classes=[AllowAny]),
        name="schema",
    ),
    path(
        "docs",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", permission_classes=[AllowAny]
        ),
        name="docs",
    ),
    re_path(r"^.*$", not_found),
]
