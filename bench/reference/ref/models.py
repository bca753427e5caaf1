from django.db import models


class Event(models.Model):
    """One event webhook, as it came."""

    uuid = models.CharField(max_length=80)
    status = models.CharField(max_length=40)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.status} {self.uuid}"
