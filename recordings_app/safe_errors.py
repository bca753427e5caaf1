"""What Django's debug error page may show: no credential, whatever its setting.

Django hides settings named like API, KEY, PASS, SECRET, SIGNATURE, TOKEN;
ours also hold passwords in URLs (DATABASE_URL, REDIS_URL, AWS_S3_ENDPOINT_URL)
and in the channel layer's hosts.
"""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class CredentialsHidingFilter(SafeExceptionReporterFilter):
    """Settings and request headers that may carry a credential are starred."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|URL"
        "|CHANNEL_LAYERS|DATABASES",
        flags=re.IGNORECASE,
    )
