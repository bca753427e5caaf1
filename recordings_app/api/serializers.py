"""What the API says of calls, their events and recordings (read only).

Links are absolute URLs of the API itself (audio included) and of the
call's page, so a CRM can store them as they are.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Call, CallEvent, LiveSocket, Recording
from ..timeline import event_detail, event_label


def _absolute(serializer: serializers.Serializer, path: str) -> str:
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


class RecordingSerializer(serializers.ModelSerializer):
    """A recording with its integrity figures, as the call page shows them."""

    url = serializers.SerializerMethodField()
    audio_url = serializers.SerializerMethodField(
        help_text="A WAV of the recorded audio (HTTP Range for stored WAV)."
    )
    duration_seconds = serializers.FloatField(read_only=True)
    sealed = serializers.BooleanField(read_only=True)

    class Meta:
        model = Recording
        fields = [
            "id",
            "url",
            "audio_url",
            "call_id",
            "started_at",
            "ended_at",
            "duration_seconds",
            "sample_rate",
            "format",
            "sealed",
            "size_bytes",
            "frame_count",
            "expected_frame_count",
            "gap_count",
            "longest_gap_ms",
            "odd_byte_carries",
            "paused_seconds",
            "ended_paused",
            "recovered",
            "pcm_sha256",
            "sha256",
        ]
        read_only_fields = fields

    def get_url(self, recording: Recording) -> str:
        return _absolute(self, reverse("api:recording", args=[recording.pk]))

    def get_audio_url(self, recording: Recording) -> str:
        return _absolute(self, reverse("api:recording_audio", args=[recording.pk]))


class RecordingSummarySerializer(RecordingSerializer):
    class Meta(RecordingSerializer.Meta):
        fields = ["id", "url", "audio_url", "duration_seconds", "format", "size_bytes"]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    """An event as the timeline says it, with what Vonage sent."""

    label = serializers.SerializerMethodField()
    detail = serializers.SerializerMethodField()
    leg = serializers.SerializerMethodField()

    class Meta:
        model = CallEvent
        fields = ["id", "timestamp", "status", "label", "detail", "leg", "payload"]
        read_only_fields = fields

    def get_label(self, event: CallEvent) -> str:
        return event_label(event)

    def get_detail(self, event: CallEvent) -> str:
        return event_detail(event)

    @extend_schema_field(
        serializers.ChoiceField(choices=["caller", "recording", "socket", "staff"])
    )
    def get_leg(self, event: CallEvent) -> str:
        """caller (its webhook events), recording (the websocket leg's),
        socket (messages on the audio socket) or staff (pauses, holds)."""
        if event.source == CallEvent.Source.WEBHOOK:
            return "recording" if event.is_websocket_leg else "caller"
        return event.source


class CallSerializer(serializers.ModelSerializer):
    """A call on the list: who, when, how long, its recordings."""

    url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    recordings = RecordingSummarySerializer(many=True, read_only=True)

    class Meta:
        model = Call
        fields = [
            "id",
            "url",
            "page_url",
            "uuid",
            "conversation_uuid",
            "from_number",
            "to_number",
            "direction",
            "status",
            "started_at",
            "ended_at",
            "duration_seconds",
            "legal_hold",
            "recordings",
        ]
        read_only_fields = fields

    def get_url(self, call: Call) -> str:
        return _absolute(self, reverse("api:call", args=[call.pk]))

    def get_page_url(self, call: Call) -> str:
        return _absolute(self, call.get_absolute_url())

    def get_duration_seconds(self, call: Call) -> float | None:
        """Vonage's duration once the call completed; until then, the audio's."""
        return call.display_duration


class CallDetailSerializer(CallSerializer):
    """A call with its whole timeline and its recordings' figures."""

    recordings = RecordingSerializer(many=True, read_only=True)
    events = EventSerializer(many=True, read_only=True)

    class Meta(CallSerializer.Meta):
        fields = CallSerializer.Meta.fields + [
            "legal_hold_by",
            "legal_hold_at",
            "events",
        ]
        read_only_fields = fields


class LiveCallSerializer(serializers.ModelSerializer):
    """A call being recorded now."""

    call = CallSerializer(read_only=True)

    class Meta:
        model = LiveSocket
        fields = ["call", "started_at", "paused", "paused_by", "sample_rate"]
        read_only_fields = fields


class LegalHoldSerializer(serializers.Serializer):
    """The hold after the request: on or off, who placed it and when."""

    legal_hold = serializers.BooleanField()
    legal_hold_by = serializers.CharField()
    legal_hold_at = serializers.DateTimeField(allow_null=True)
