"""The list page's search box and filters."""

from __future__ import annotations

from datetime import date

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from .selectors import SORTS
from .vonage import STATUS_RANK


class CallFilterForm(forms.Form):
    """Every field is optional; selectors.finished_calls applies them."""

    q = forms.CharField(
        label="Number or uuid", required=False, max_length=100, strip=True
    )
    # Bounded: a day after 9999-12-31 (or before year 1) cannot be computed.
    since = forms.DateField(
        label="From", required=False, validators=[MinValueValidator(date(1900, 1, 1))]
    )
    until = forms.DateField(
        label="To", required=False, validators=[MaxValueValidator(date(9998, 12, 31))]
    )
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

    def filters(self) -> dict:
        """The valid filters, for selectors.finished_calls (none if any is wrong)."""
        return self.cleaned_data if self.is_valid() else {}


class CodeForm(forms.Form):
    """A code from an authenticator app, or a recovery code."""

    code = forms.CharField(
        label="Code",
        max_length=20,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )
