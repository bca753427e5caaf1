from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .vonage import STATUS_RANK

SORTS = {
    "newest": ("Newest first", ["-started_at", "-id"]),
    "oldest": ("Oldest first", ["started_at", "id"]),
    "longest": ("Longest first", [F("duration_seconds").desc(nulls_last=True), "-id"]),
    "caller": ("By caller", ["from_number", "-started_at"]),
}


def _day_start(day: date) -> datetime:
    """Midnight at the start of the day, in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


class CallFilterForm(forms.Form):
    """The list page's search box and filters; every field is optional."""

    q = forms.CharField(
        label="Number or uuid", required=False, max_length=100, strip=True
    )
    since = forms.DateField(label="From", required=False)
    until = forms.DateField(label="To", required=False)
    status = forms.ChoiceField(
        label="Status",
        required=False,
        choices=[("", "Any status")] + [(s, s) for s in STATUS_RANK],
    )
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        choices=[(key, label) for key, (label, _) in SORTS.items()],
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The 'From' date is after the 'To' date.")
        return cleaned

    def filter(self, calls: QuerySet) -> QuerySet:
        """Apply the valid filters (none when the form has errors) and the sort."""
        data = self.cleaned_data if self.is_valid() else {}
        if query := data.get("q"):
            calls = calls.filter(
                Q(from_number__contains=query)
                | Q(to_number__contains=query)
                | Q(uuid__istartswith=query)
                | Q(conversation_uuid__icontains=query)
            )
        # A range on started_at itself, not started_at__date: a cast of the
        # column cannot use its index (a full scan of 100,000 calls).
        if data.get("since"):
            calls = calls.filter(started_at__gte=_day_start(data["since"]))
        if data.get("until"):
            calls = calls.filter(
                started_at__lt=_day_start(data["until"] + timedelta(days=1))
            )
        if data.get("status"):
            calls = calls.filter(status=data["status"])
        _, order = SORTS[data.get("sort") or "newest"]
        return calls.order_by(*order)
