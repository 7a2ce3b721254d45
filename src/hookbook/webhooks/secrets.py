"""Webhook signing secrets, encrypted at rest with Fernet, with key rotation.

The ``webhooks.secret_keys`` setting is a list of strings. The first key
encrypts; every key decrypts (``cryptography``'s ``MultiFernet``), so keys
rotate by putting a new key first and keeping the old ones until
:meth:`SecretBox.rotate` has re-encrypted what they protect.

Each configured string, surrounding whitespace removed, becomes a Fernet key:

- a Fernet key itself (``generate_key()`` output: 44 characters, URL-safe
  base64 of 32 bytes) is used as is;
- any other non-empty string is a passphrase, and the key is derived as
  ``base64.urlsafe_b64encode(hashlib.sha256(string.encode("utf-8")).digest())``
  (as Tiled derives its webhook-secret keys). Use a long random string:
  SHA-256 is fast, so a short passphrase is guessable.

A token that no configured key decrypts raises
:class:`hookbook.errors.SecretUnavailable`; the caller records the delivery as
failed and never sends it unsigned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hookbook.errors import ConfigurationError, SecretUnavailable

__all__ = ["SecretBox", "SecretUnavailable", "derive_fernet_key", "generate_key"]

_SETTING = "webhooks.secret_keys"
_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


def generate_key() -> str:
    """A new random Fernet key, as a string for ``webhooks.secret_keys``."""
    return Fernet.generate_key().decode("ascii")


def derive_fernet_key(key: str) -> bytes:
    """The Fernet key for one ``webhooks.secret_keys`` entry (see the module docstring)."""
    text = key.strip()
    if _FERNET_KEY.fullmatch(text):
        try:
            if len(base64.urlsafe_b64decode(text)) == 32:
                return text.encode("ascii")
        except (binascii.Error, ValueError):  # pragma: no cover - the pattern rules it out
            pass
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode("utf-8")).digest())


class SecretBox:
    """Encrypts and decrypts webhook secrets with the configured keys.

    ``keys`` is the ``webhooks.secret_keys`` setting: a non-empty list of
    non-blank strings, or ``ConfigurationError`` naming the setting. Never
    shows the keys (not in ``repr``, not in errors).
    """

    __slots__ = ("_fernet", "_primary", "_size")

    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str | bytes) or not isinstance(keys, Sequence):
            raise ConfigurationError(
                f"{_SETTING} must be a list of keys, not a single {type(keys).__name__}",
                setting=_SETTING,
            )
        if not keys:
            raise ConfigurationError(
                f"{_SETTING} is empty: configure at least one key (the first encrypts); "
                "generate one with hookbook.webhooks.secrets.generate_key()",
                setting=_SETTING,
            )
        fernets = []
        for index, key in enumerate(keys):
            if not isinstance(key, str):
                raise ConfigurationError(
                    f"{_SETTING}[{index}] must be a string, not {type(key).__name__}",
                    setting=_SETTING,
                )
            if not key.strip():
                raise ConfigurationError(
                    f"{_SETTING}[{index}] is empty or blank (an unset environment variable?)",
                    setting=_SETTING,
                )
            fernets.append(Fernet(derive_fernet_key(key)))
        self._fernet = MultiFernet(fernets)
        self._primary = fernets[0]
        self._size = len(fernets)

    def __repr__(self) -> str:
        plural = "" if self._size == 1 else "s"
        return f"<SecretBox: {self._size} key{plural}>"

    def encrypt(self, secret: str) -> str:
        """Encrypt ``secret`` with the first key; return the Fernet token as a string."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt a token made by :meth:`encrypt` with any configured key.

        Raises :class:`SecretUnavailable` if no configured key decrypts it
        (the key that encrypted it was removed, or the token is corrupt).
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnavailable(_UNAVAILABLE) from exc

    def is_current(self, token: str) -> bool:
        """Whether the first (encrypting) key decrypts ``token``: no rotation needed."""
        try:
            self._primary.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the first key (decrypting it with any key).

        Raises :class:`SecretUnavailable` like :meth:`decrypt`.
        """
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretUnavailable(_UNAVAILABLE) from exc


_UNAVAILABLE = (
    f"the webhook secret cannot be decrypted with the configured {_SETTING} "
    "(was the key that encrypted it removed from the list?)"
)
