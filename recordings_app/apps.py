from django.apps import AppConfig


class RecordingsAppConfig(AppConfig):
    name = "recordings_app"
    verbose_name = "Call recordings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
