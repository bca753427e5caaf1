"""Settings for callrecorder, read from the environment.

Every setting has a default that is safe for a newcomer's machine (DEBUG on,
SQLite, the in-memory channel layer, local media/). With DEBUG off, the
secrets must come from the environment or the server refuses to start.
See the settings table in README.md.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from recordings_app.audio.codecs import FORMATS
from recordings_app.audio.pcm import SUPPORTED_SAMPLE_RATES
from recordings_app.audio.sealing import BadKeys, KeyRing
from recordings_app.audio.spool import PRIVATE_DIR, PRIVATE_FILE, private_file

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str, default: str = "") -> list[str]:
    """Addresses or CIDRs, comma-separated; set but empty means none."""
    networks = [
        item.strip()
        for item in os.environ.get(name, default).split(",")
        if item.strip()
    ]
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {network!r} is not an address or a CIDR"
            ) from None
    return networks


def env_count(name: str, default: int, *, of: str) -> int:
    """A whole number of `of` (1 or more)."""
    value = os.environ.get(name, "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of {of} (1 or more), not {value!r}"
        )
    return int(value)


def dev_secret_key() -> str:
    """A per-checkout key kept out of the repository, so dev logins survive restarts."""
    path = BASE_DIR / ".dev-secret-key"
    if not path.exists():
        with open(path, "w", opener=private_file) as key_file:
            key_file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
_NEW_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off it must come from the "
            f"environment (for example: {_NEW_KEY})."
        )
    SECRET_KEY = dev_secret_key()
# Django's own rule for a strong key (check security.W009), enforced.
if not DEBUG and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured(
        "SECRET_KEY is too short or too plain: it needs at least 50 characters, "
        f"5 of them different (for example: {_NEW_KEY})."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set. With DEBUG off it must list the host "
            "names this server answers to, comma-separated."
        )
    # Local use plus the usual tunnels a developer points Vonage at.
    ALLOWED_HOSTS = [
        "localhost",
        "127.0.0.1",
        "[::1]",
        ".ngrok-free.app",
        ".ngrok.app",
        ".ngrok.io",
        ".trycloudflare.com",
        ".loca.lt",
    ]

# The public base URL Vonage reaches us at (https://example.com). When unset,
# the WebSocket URI in the NCCO is derived from each answer request.
PUBLIC_URL = os.environ.get("PUBLIC_URL", "").rstrip("/")
if PUBLIC_URL and not PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"PUBLIC_URL must start with http:// or https://, not {PUBLIC_URL!r}"
    )

# Our own reverse proxies (nginx, a load balancer, a tunnel's agent):
# addresses or CIDRs, comma-separated. Only from these are X-Forwarded-For
# (the client's address in the access log), -Proto and -Host believed; from
# anyone else they are dropped (recordings_app.middleware). Default: none.
if "TRUST_PROXY_HEADERS" in os.environ:
    raise ImproperlyConfigured(
        "TRUST_PROXY_HEADERS is gone: list your proxies' addresses in "
        "TRUSTED_PROXIES instead (for example TRUSTED_PROXIES=127.0.0.1)."
    )
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True

# In production the login cookies only travel over HTTPS, plain HTTP is
# redirected and browsers are told to use HTTPS only (HSTS, a year); each
# can be turned off, e.g. when TLS ends at a proxy that redirects itself.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(
    os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600))
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
if PUBLIC_URL and PUBLIC_URL not in CSRF_TRUSTED_ORIGINS:
    CSRF_TRUSTED_ORIGINS.append(PUBLIC_URL)

INSTALLED_APPS = [
    "daphne",  # first, so runserver serves ASGI (daphne.E001)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the API docs' Swagger UI, served from here
    "recordings_app",
]

MIDDLEWARE = [
    "recordings_app.middleware.trusted_proxy_headers",  # before anything reads them
    "recordings_app.middleware.webhooks_skip_page_middleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "recordings_app.middleware.idle_sessions_end",
    "recordings_app.middleware.second_factor_first",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# django-axes counts failed sign-ins (the admin's too) before the password
# is even checked; see "Signing in" below.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "callrecorder.urls"
ASGI_APPLICATION = "callrecorder.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default, set up for many concurrent writers: WAL lets readers
# run beside a writer, IMMEDIATE takes the write lock at BEGIN (no deadlock
# on upgrade), and the timeout makes a writer wait instead of failing with
# "database is locked".
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Created readable by the server's user only (SQLite gives its -wal and
    # -shm files the same mode).
    _sqlite_file = Path(DATABASES["default"]["NAME"])
    if not _sqlite_file.exists() and _sqlite_file.parent.is_dir():
        os.close(private_file(str(_sqlite_file), os.O_CREAT | os.O_WRONLY))
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# PostgreSQL through a bounded connection pool: each request runs in a
# thread of its own, so a burst of webhooks would otherwise open a
# connection each and fail with "too many clients"; now they wait their turn.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_SIZE", "10")),
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Messages a channel holds before more are dropped (Channels' default: 100).
# A dashboard must not lose a call's start when hundreds start at once.
CHANNEL_CAPACITY = 1000
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 gives up on a read after 5 s, just when channels-redis
            # ends its 5-second blocking wait for the next message: every idle
            # consumer would crash (django/channels_redis#422). No read timeout,
            # as before redis-py 8; a finite one also hangs cancelled receives.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves static files in every mode. In production they are
# collected first (manage.py collectstatic); in development they are found
# in the apps directly.
STATIC_ROOT = (
    None if DEBUG else Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
)
WHITENOISE_USE_FINDERS = True

# Recordings are never served from a public URL: MEDIA_URL exists for
# Django's sake only, and the media view streams files with Range support.
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))

# Stored recordings (and the folders made for them) are the server's own:
# Django's default would leave them readable by every user of the machine.
# Handed to nginx (x-accel-redirect), they are readable by the server's
# group too: put nginx's user in it.
FILE_UPLOAD_PERMISSIONS = PRIVATE_FILE
FILE_UPLOAD_DIRECTORY_PERMISSIONS = PRIVATE_DIR

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Recordings in S3-compatible object storage (django-storages) when a bucket
# is named; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# as boto3 reads them. Objects are private: the media view checks the login,
# then streams them or (RECORDINGS_DELIVERY=storage-url) redirects to a
# short-lived signed URL.
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
        },
    }

# The debug error page stars every setting that may hold a credential.
DEFAULT_EXCEPTION_REPORTER_FILTER = "recordings_app.safe_errors.CredentialsHidingFilter"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "recordings:call_list"
LOGOUT_REDIRECT_URL = "login"


# --- signing in -----------------------------------------------------------

# After this many failed sign-ins for one user name, or from one address
# (the client's, as recordings_app.addresses.client_ip sees it), both are
# refused for the lockout time, counted from the last failure; an admin can
# unlock earlier (Users -> "Unlock sign-in", or Access attempts).
CALLRECORDER_SIGNIN_FAILURE_LIMIT = env_count(
    "CALLRECORDER_SIGNIN_FAILURE_LIMIT", 10, of="failed sign-ins"
)
CALLRECORDER_SIGNIN_LOCKOUT_MINUTES = env_count(
    "CALLRECORDER_SIGNIN_LOCKOUT_MINUTES", 15, of="minutes"
)
AXES_FAILURE_LIMIT = CALLRECORDER_SIGNIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=CALLRECORDER_SIGNIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "recordings_app.addresses.client_ip"
AXES_LOCKOUT_CALLABLE = "recordings_app.views.accounts.locked_out"
# A success must not clear the address's count: one known account would
# let an attacker go on guessing others' passwords from the same address.
AXES_RESET_ON_SUCCESS = False

# A second factor (an authenticator app's code, TOTP, with recovery codes):
# staff and superusers must set one up before anything else when this is on
# (the default with DEBUG off); anyone may turn one on for themselves.
CALLRECORDER_REQUIRE_MFA = env_bool("CALLRECORDER_REQUIRE_MFA", not DEBUG)
OTP_TOTP_ISSUER = os.environ.get("CALLRECORDER_MFA_ISSUER", "Call recorder")

# A session nobody has used for this long ends: the next page asks to sign
# in again, and open live pages close their sockets.
CALLRECORDER_SESSION_IDLE_MINUTES = env_count(
    "CALLRECORDER_SESSION_IDLE_MINUTES", 60, of="minutes"
)
SESSION_COOKIE_AGE = CALLRECORDER_SESSION_IDLE_MINUTES * 60

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "warnings": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": "WARNING",
        },
    },
    # Warnings and errors from everything else (django.request's tracebacks).
    "root": {"handlers": ["warnings"], "level": "WARNING"},
    "loggers": {
        "recordings_app": {
            "handlers": ["console"],
            "level": os.environ.get("LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}

# --- callrecorder ---------------------------------------------------------

# Spoken to the caller before the call is connected to the recorder.
CALLRECORDER_GREETING = os.environ.get(
    "CALLRECORDER_GREETING", "This call is recorded."
)
# Sample rate asked of Vonage: 8000, 16000 or 24000 (16-bit mono PCM).
CALLRECORDER_SAMPLE_RATE = int(os.environ.get("CALLRECORDER_SAMPLE_RATE", "16000"))
if CALLRECORDER_SAMPLE_RATE not in SUPPORTED_SAMPLE_RATES:
    raise ImproperlyConfigured(
        "CALLRECORDER_SAMPLE_RATE must be "
        f"{', '.join(map(str, SUPPORTED_SAMPLE_RATES[:-1]))} "
        f"or {SUPPORTED_SAMPLE_RATES[-1]}, not {CALLRECORDER_SAMPLE_RATE}"
    )
# Where audio is written while a call is live; on the same filesystem as
# MEDIA_ROOT, finishing a recording is a rename, not a copy.
SPOOL_DIR = Path(os.environ.get("SPOOL_DIR", BASE_DIR / "spool"))
# How often the spool is flushed to the operating system while a call runs:
# the most audio a crash of the process can lose.
CALLRECORDER_SPOOL_FLUSH_SECONDS = float(
    os.environ.get("CALLRECORDER_SPOOL_FLUSH_SECONDS", "0.5")
)
# A spool nobody has written to for this long (and whose writer's lock is
# gone) is turned into a recording by manage.py recover_recordings.
CALLRECORDER_RECOVERY_GRACE_SECONDS = float(
    os.environ.get("CALLRECORDER_RECOVERY_GRACE_SECONDS", "60")
)
CALLRECORDER_CALLS_PER_PAGE = int(os.environ.get("CALLRECORDER_CALLS_PER_PAGE", "25"))

# Daphne's per-message limit, used by runserver (1 MiB; never 0). One 20 ms
# frame at 24 kHz is 960 bytes.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = 1024 * 1024

# --- who may get in -------------------------------------------------------

# Keys a caller presses: "keep" stores each digit, except while recording is
# paused (a card number: only "key pressed" and its time are kept); "mask"
# never stores a digit, for sites that take card numbers outside pauses.
CALLRECORDER_DTMF_DIGITS = os.environ.get("CALLRECORDER_DTMF_DIGITS", "keep")
if CALLRECORDER_DTMF_DIGITS not in ("keep", "mask"):
    raise ImproperlyConfigured(
        f"CALLRECORDER_DTMF_DIGITS must be keep or mask, not "
        f"{CALLRECORDER_DTMF_DIGITS!r}"
    )

# Vonage signs its webhooks with this secret (Dashboard -> Settings ->
# Signature secret). When set, unsigned, expired, replayed or altered
# webhooks get 401, and Vonage is asked to sign the audio socket's handshake.
VONAGE_SIGNATURE_SECRET = os.environ.get("VONAGE_SIGNATURE_SECRET", "")
# How old a webhook's token may be (its iat claim).
VONAGE_SIGNATURE_MAX_AGE = float(os.environ.get("VONAGE_SIGNATURE_MAX_AGE", "300"))
# Without the secret, webhooks and audio sockets are taken only straight
# from this machine (loopback, no forwarding header): the simulator, local
# development. This name says what taking them from anywhere means; with
# DEBUG off, the server does not start without one or the other.
UNSAFE_ALLOW_UNSIGNED_WEBHOOKS = env_bool("UNSAFE_ALLOW_UNSIGNED_WEBHOOKS", False)
if not DEBUG and VONAGE_SIGNATURE_SECRET and len(VONAGE_SIGNATURE_SECRET) < 32:
    raise ImproperlyConfigured(
        "VONAGE_SIGNATURE_SECRET is too short: HS256 needs at least 32 characters "
        "(copy the whole signature secret from the Vonage dashboard)."
    )
if not DEBUG and not VONAGE_SIGNATURE_SECRET and not UNSAFE_ALLOW_UNSIGNED_WEBHOOKS:
    raise ImproperlyConfigured(
        "VONAGE_SIGNATURE_SECRET is not set. With DEBUG off, webhooks must be "
        "verified: set it to your Vonage account's signature secret (or, to "
        "accept anyone's webhooks, UNSAFE_ALLOW_UNSIGNED_WEBHOOKS=true)."
    )
# How long the per-call token in the socket URI is valid: Vonage opens the
# socket right after the greeting.
CALLRECORDER_SOCKET_TOKEN_MAX_AGE = float(
    os.environ.get("CALLRECORDER_SOCKET_TOKEN_MAX_AGE", "120")
)

# A socket that has not sent websocket:connected this long after opening is
# closed (4410): an idle socket must not hold a recording slot.
CALLRECORDER_CONNECTED_TIMEOUT_SECONDS = float(
    os.environ.get("CALLRECORDER_CONNECTED_TIMEOUT_SECONDS", "10")
)
# Limits of the audio socket. A Vonage frame is 320-960 bytes; Vonage's own
# limit on a connect is 7200 s.
CALLRECORDER_MAX_FRAME_BYTES = int(
    os.environ.get("CALLRECORDER_MAX_FRAME_BYTES", "8192")
)
CALLRECORDER_MAX_CALL_SECONDS = int(
    os.environ.get("CALLRECORDER_MAX_CALL_SECONDS", "7200")
)
# bench/ measured 450 real-time calls per Daphne process on one core; 400
# leaves headroom (raise it on faster machines, after measuring).
CALLRECORDER_MAX_SOCKETS = int(os.environ.get("CALLRECORDER_MAX_SOCKETS", "400"))

# How recordings reach the browser after the permission check:
#   stream            this app streams the file, with HTTP Range (default)
#   storage-url       redirect to the storage's own URL (a signed S3 URL)
#   x-accel-redirect  hand off to nginx: X-Accel-Redirect to
#                     RECORDINGS_X_ACCEL_PREFIX + the file's name
RECORDINGS_DELIVERY = os.environ.get("RECORDINGS_DELIVERY", "stream")
if RECORDINGS_DELIVERY not in ("stream", "storage-url", "x-accel-redirect"):
    raise ImproperlyConfigured(
        "RECORDINGS_DELIVERY must be stream, storage-url or x-accel-redirect, "
        f"not {RECORDINGS_DELIVERY!r}"
    )
if RECORDINGS_DELIVERY == "x-accel-redirect":  # nginx reads them: the group may
    FILE_UPLOAD_PERMISSIONS, FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o640, 0o750
RECORDINGS_X_ACCEL_PREFIX = os.environ.get(
    "RECORDINGS_X_ACCEL_PREFIX", "/protected-recordings/"
)
# Requests for the same recording by the same user within this many seconds
# are one play in the access log.
ACCESS_LOG_PLAY_WINDOW_SECONDS = float(
    os.environ.get("ACCESS_LOG_PLAY_WINDOW_SECONDS", "1800")
)

# --- how recordings are stored -------------------------------------------

# wav (the default: plays anywhere), flac (lossless, under half the bytes on
# speech) or opus (about 20 kbit/s, lossy: for long retention). A call is
# encoded once, when it ends; manage.py archive_recordings converts older ones.
CALLRECORDER_STORAGE_FORMAT = os.environ.get("CALLRECORDER_STORAGE_FORMAT", "wav")
if CALLRECORDER_STORAGE_FORMAT not in FORMATS:
    raise ImproperlyConfigured(
        f"CALLRECORDER_STORAGE_FORMAT must be {', '.join(FORMATS)}, "
        f"not {CALLRECORDER_STORAGE_FORMAT!r}"
    )
# Recordings older than this many days are converted automatically to
# CALLRECORDER_ARCHIVE_FORMAT, wherever the retention purge runs (unset: never).
_archive_days = os.environ.get("CALLRECORDER_ARCHIVE_AFTER_DAYS", "").strip()
CALLRECORDER_ARCHIVE_AFTER_DAYS: int | None = None
if _archive_days:
    CALLRECORDER_ARCHIVE_AFTER_DAYS = env_count(
        "CALLRECORDER_ARCHIVE_AFTER_DAYS", 0, of="days"
    )
CALLRECORDER_ARCHIVE_FORMAT = os.environ.get("CALLRECORDER_ARCHIVE_FORMAT", "flac")
if CALLRECORDER_ARCHIVE_FORMAT not in ("flac", "opus"):
    raise ImproperlyConfigured(
        "CALLRECORDER_ARCHIVE_FORMAT must be flac or opus, "
        f"not {CALLRECORDER_ARCHIVE_FORMAT!r}"
    )
# ID:KEY,ID:KEY (each KEY 32 bytes, URL-safe base64; manage.py
# new_recording_key prints one). Set, every recording stored from then on is
# sealed (AES-256-GCM, a data key of its own wrapped by the first key); all
# the keys listed open recordings. Unset: stored as they are.
CALLRECORDER_ENCRYPTION_KEYS = os.environ.get(
    "CALLRECORDER_ENCRYPTION_KEYS", ""
).strip()
if CALLRECORDER_ENCRYPTION_KEYS:
    try:
        KeyRing.parse(CALLRECORDER_ENCRYPTION_KEYS)
    except BadKeys as error:
        raise ImproperlyConfigured(f"CALLRECORDER_ENCRYPTION_KEYS: {error}") from None

# --- the access log ------------------------------------------------------

# The access log's chain is an HMAC under this key (else one derived from
# SECRET_KEY: set this in production, so SECRET_KEY can change without the
# log failing to verify). Keep it apart from the database's backups.
CALLRECORDER_AUDIT_KEY = os.environ.get("CALLRECORDER_AUDIT_KEY", "")
if CALLRECORDER_AUDIT_KEY and len(CALLRECORDER_AUDIT_KEY) < 32:
    raise ImproperlyConfigured(
        "CALLRECORDER_AUDIT_KEY must be at least 32 characters (python -c "
        "'import secrets; print(secrets.token_urlsafe(32))' prints one)"
    )
# The chain's head (entry number and hash) is written outside the database,
# within CALLRECORDER_AUDIT_CHECKPOINT_SECONDS of each new entry: appended to
# a file in this folder (give it its own disk, or make it append-only with
# chattr +a), and/or to objects under an S3 prefix (s3://bucket/prefix;
# on a bucket with Object Lock each is put under a legal hold).
# Set it empty for S3 only.
_checkpoint_dir = os.environ.get(
    "CALLRECORDER_AUDIT_CHECKPOINT_DIR", str(BASE_DIR / "audit")
).strip()
CALLRECORDER_AUDIT_CHECKPOINT_DIR = Path(_checkpoint_dir) if _checkpoint_dir else None
CALLRECORDER_AUDIT_CHECKPOINT_S3 = os.environ.get(
    "CALLRECORDER_AUDIT_CHECKPOINT_S3", ""
).strip()
if CALLRECORDER_AUDIT_CHECKPOINT_S3 and not CALLRECORDER_AUDIT_CHECKPOINT_S3.startswith(
    "s3://"
):
    raise ImproperlyConfigured(
        "CALLRECORDER_AUDIT_CHECKPOINT_S3 must look like s3://bucket/prefix, "
        f"not {CALLRECORDER_AUDIT_CHECKPOINT_S3!r}"
    )
CALLRECORDER_AUDIT_CHECKPOINT_SECONDS = float(
    os.environ.get("CALLRECORDER_AUDIT_CHECKPOINT_SECONDS", "60")
)

# --- retention ------------------------------------------------------------

# Calls (with their recordings) older than this many days are purged
# automatically wherever services.retention.retention_purge_if_due() runs: in
# recover_recordings (make run runs it at start), and after calls finish.
# Unset keeps every call forever; calls on legal hold and calls still in
# progress are never purged. manage.py purge_recordings purges by hand.
_retention_days = os.environ.get("CALLRECORDER_RETENTION_DAYS", "").strip()
CALLRECORDER_RETENTION_DAYS: int | None = None
if _retention_days:
    if not _retention_days.isdigit() or int(_retention_days) < 1:
        raise ImproperlyConfigured(
            "CALLRECORDER_RETENTION_DAYS must be a whole number of days (1 or "
            f"more), or unset to keep calls forever; not {_retention_days!r}"
        )
    CALLRECORDER_RETENTION_DAYS = int(_retention_days)
# The automatic purge runs at most this often in one process.
CALLRECORDER_RETENTION_CHECK_SECONDS = float(
    os.environ.get("CALLRECORDER_RETENTION_CHECK_SECONDS", "3600")
)

# --- the HTTP API (/api/v1/) -------------------------------------------------

# A token (Authorization: Bearer) acts as its user, with the pages' permissions
# and lines, limited to its scope; a signed-in browser session works too (with
# CSRF). Each token (or session user) gets CALLRECORDER_API_RATE requests.
CALLRECORDER_API_RATE = os.environ.get("CALLRECORDER_API_RATE", "600/minute")
CALLRECORDER_API_PAGE_SIZE = int(os.environ.get("CALLRECORDER_API_PAGE_SIZE", "50"))
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "recordings_app.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["recordings_app.api.auth.TokenScope"],
    "DEFAULT_THROTTLE_CLASSES": ["recordings_app.api.auth.PerTokenThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": CALLRECORDER_API_RATE},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "recordings_app.api.errors.json_error",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "callrecorder API",
    "DESCRIPTION": "Calls, their events and recordings, as the pages show them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recordings_app.api.errors.error_responses",
    ],
}
# Throttle counts: shared by every worker through Redis when there is one.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    ),
}

# No inline script anywhere (django-csp): a script injected into a page
# cannot run. Inline style attributes stay allowed (the waveform's marker
# positions); recordings may come from the bucket (RECORDINGS_DELIVERY).
_MEDIA_SOURCES = [SELF]
if RECORDINGS_DELIVERY == "storage-url":
    _MEDIA_SOURCES.append(
        os.environ.get("AWS_S3_ENDPOINT_URL") or "https://*.amazonaws.com"
    )
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "media-src": _MEDIA_SOURCES,
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- health and metrics ---

# /metrics (Prometheus) answers a request that carries `Authorization: Bearer
# METRICS_TOKEN`, or comes from METRICS_ALLOWED_IPS (addresses or CIDRs,
# comma-separated; the client's address as the access log has it, so behind a
# proxy, list the proxy in TRUSTED_PROXIES). Default: this machine only
# (loopback, not through a proxy), so a local Prometheus works as it is; set
# it empty to ask everyone for the token. Else 401 (token) or 403.
# /healthz and /readyz answer anyone: they say only ok, or what is down.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
if not DEBUG and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "METRICS_TOKEN is too short: use at least 32 characters (python -c "
        "'import secrets; print(secrets.token_urlsafe(32))' prints one)"
    )
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS", "127.0.0.1,::1")
# How long /readyz waits for each of the database, the storage and the
# channel layer (and /metrics for the database and spool folder's figures).
HEALTH_CHECK_TIMEOUT_SECONDS = float(
    os.environ.get("HEALTH_CHECK_TIMEOUT_SECONDS", "2")
)
# PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself, from the
# environment of the server processes): with several workers, each keeps its
# counts in files there and /metrics adds them all up. Empty it before the
# workers start; unset, each process counts for itself (make run, one worker).
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _metrics_dir:
    Path(_metrics_dir).mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
