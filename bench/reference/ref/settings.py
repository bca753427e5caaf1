"""Settings of the reference: SQLite, in-memory channel layer, nothing else."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("REFERENCE_DIR", "/tmp/bench/reference"))
SECRET_KEY = "reference-only-not-a-secret-" + "x" * 30
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "channels", "ref"]
ROOT_URLCONF = "ref.urls"
ASGI_APPLICATION = "ref.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": WORK / "db.sqlite3",
        "OPTIONS": {"timeout": 20},
    }
}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUDIO_DIR = WORK / "audio"
