"""Verify a hookbook delivery with the ``standardwebhooks`` package instead.

hookbook signs with the secret's UTF-8 bytes; Standard Webhooks libraries
take the key as ``"whsec_" + base64(key)``: ``standard_webhooks_secret``
converts one into the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook

from hookbook.signing import standard_webhooks_secret


def verify_with_standardwebhooks(body: bytes, headers: Mapping[str, str], secret: str) -> Any:
    """Return the decoded JSON payload; raises ``standardwebhooks.WebhookVerificationError``."""
    return Webhook(standard_webhooks_secret(secret)).verify(body, dict(headers))
