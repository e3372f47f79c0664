"""The bearer token that guards ``GET /recommendations/{user_id}``.

A list is what a user was shown: personal data. With ``RTRANK_WEB_TOKEN`` (or
``RTRANK_WEB_TOKEN_FILE``) set, a request without ``Authorization: Bearer <token>``, or with
another token, gets 401 and ``WWW-Authenticate: Bearer`` (RFC 6750). ``/health`` and
``/metrics`` stay open: probes and Prometheus reach them without a secret, and they hold no
user's data. The token is compared in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

from rtrank.streams.settings import Settings, SettingsError

CHALLENGE = 'Bearer realm="rtrank"'


def bearer_token(settings: Settings) -> bytes | None:
    """The token requests must carry, None when none is configured.

    Raises:
        SettingsError: both variables are set, or the file cannot be read or is empty (one
            line naming the variable).
    """
    token, path = settings.web_token.get_secret_value(), settings.web_token_file
    if token and path:
        raise SettingsError("set RTRANK_WEB_TOKEN or RTRANK_WEB_TOKEN_FILE, not both")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"RTRANK_WEB_TOKEN_FILE={path!r} cannot be read: {e}") from None
        if not token:
            raise SettingsError(f"RTRANK_WEB_TOKEN_FILE={path!r} is empty")
    return token.encode() if token else None


def challenge(headers: Mapping[str, str], token: bytes | None) -> str | None:
    """None when a request with ``headers`` may read a list; otherwise the
    ``WWW-Authenticate`` value to refuse it with (``error="invalid_token"`` when a token
    was sent and is wrong)."""
    if token is None:
        return None
    scheme, _, sent = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return CHALLENGE
    if hmac.compare_digest(sent.strip().encode(), token):
        return None
    return f'{CHALLENGE}, error="invalid_token"'
