from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A key another system uses for the HTTP API, acting as its user.

    Only a hash is kept: the token itself is shown once, when it is made.
    Its prefix (the part before the secret) names it in the admin and
    finds its row; its scope caps what the user's permissions allow.
    """

    class Scope(models.TextChoices):
        READ = "read", "read: list calls, fetch recordings"
        WRITE = "write", "write: also delete recordings and set legal holds"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(
        max_length=100, blank=True, help_text="What it is for, e.g. 'CRM sync'."
    )
    scope = models.CharField(max_length=5, choices=Scope, default=Scope.READ)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(
        max_length=64, editable=False, help_text="SHA-256 of the whole token."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Refused from then on; empty: never."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Refused from then on (set by Revoke)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}, {self.scope})"
