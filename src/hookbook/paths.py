"""Node keys and paths: what a valid key is, how a path is split, joined and quoted.

The one module for these rules, used by the server, the client and the
webhook receiver. It imports only the standard library (and
:mod:`hookbook.errors`), so the receiver and the pytest plugin stay light.

A *key* names one node inside its container; a *path* is the keys from the
root to a node, written ``"a/b"`` or given as ``["a", "b"]``; the root is
``""`` or ``[]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from .errors import InvalidKeyError, InvalidPathError

#: The longest key the server accepts unless ``limits.max_key_length`` says otherwise.
MAX_KEY_LENGTH = 255

_RESERVED = frozenset({".", ".."})


def check_key(key: str, *, max_length: int = MAX_KEY_LENGTH) -> str:
    """Return ``key`` if it can name a node, else raise :class:`InvalidKeyError`.

    A key is a non-empty string of at most ``max_length`` characters, without
    ``/``, control characters or lone surrogates, and not ``.`` or ``..``.
    (The tiled client generates a ``uuid4`` string when the user gives no key.)
    """
    if not isinstance(key, str) or key == "":
        raise InvalidKeyError("key must be a non-empty string", key=key)
    if "/" in key:
        raise InvalidKeyError(f"key {key!r} must not contain '/'", key=key)
    if key in _RESERVED:
        raise InvalidKeyError(f"key {key!r} is reserved", key=key)
    if len(key) > max_length:
        raise InvalidKeyError(
            f"key is {len(key)} characters long; the limit is {max_length}",
            length=len(key),
            limit=max_length,
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKeyError(f"key {key!r} contains a control character", key=key)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
        raise InvalidKeyError(f"key {key!r} is not valid Unicode (a lone surrogate)")
    return key


def split_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """``"a/b"`` (or ``["a", "b"]``) as ``("a", "b")``; ``""`` is the root, ``()``.

    Empty segments are dropped, as Tiled does: the tiled client builds some
    URLs by appending ``/key`` to a link that may end with ``/``, so
    ``/a//b/`` means ``("a", "b")``. Segments are not checked (see
    :func:`parse_path`).
    """
    if isinstance(path, str):
        return tuple(segment for segment in path.split("/") if segment)
    return tuple(str(segment) for segment in path)


def parse_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """:func:`split_path`, refusing ``.`` and ``..`` segments (and empty ones in
    a list) with :class:`InvalidPathError`."""
    segments = split_path(path)
    for segment in segments:
        if segment == "" or segment in _RESERVED:
            raise InvalidPathError(
                f"path {join_path(segments)!r} has an invalid segment {segment!r}",
                path=join_path(segments),
            )
    return segments


def join_path(segments: Sequence[str]) -> str:
    """``("a", "b")`` as ``"a/b"``; the root is ``""``."""
    return "/".join(segments)


def quote_path(segments: Sequence[str]) -> str:
    """The path as it goes in a URL: each segment percent-encoded, ``/`` between.

    The dots of a ``.`` or ``..`` segment are encoded too: an HTTP client would
    resolve them away (``a/../b`` -> ``b``); encoded, they reach the server,
    which refuses them.
    """
    return "/".join(
        segment.replace(".", "%2E") if segment in _RESERVED else quote(segment, safe="")
        for segment in segments
    )


def prefixes(segments: Sequence[str]) -> list[str]:
    """The joined paths of a node and all its ancestors, the root (``""``) first."""
    return [join_path(segments[:i]) for i in range(len(segments) + 1)]
