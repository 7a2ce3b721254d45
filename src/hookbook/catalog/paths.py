"""Node keys and paths: what is a valid key, how a path is written and parsed."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidKeyError, InvalidPathError


def check_key(key: str, *, max_length: int) -> str:
    """Return ``key`` if it can name a node, else raise :class:`InvalidKeyError`."""
    if not isinstance(key, str) or key == "":
        raise InvalidKeyError("key must be a non-empty string", key=key)
    if "/" in key:
        raise InvalidKeyError(f"key {key!r} must not contain '/'", key=key)
    if key in {".", ".."}:
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


def parse_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """Split ``"a/b"`` (or take ``["a", "b"]``) into segments; ``""`` is the root.

    Empty segments (``a//b``, a trailing slash) are dropped, as Tiled does;
    ``.`` and ``..`` segments are refused.
    """
    if isinstance(path, str):
        segments: Sequence[str] = [s for s in path.split("/") if s]
    else:
        segments = list(path)
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise InvalidPathError(
                f"path {join_path(segments)!r} has an invalid segment {segment!r}",
                path=join_path(segments),
            )
    return tuple(segments)


def join_path(segments: Sequence[str]) -> str:
    return "/".join(segments)


def prefixes(segments: Sequence[str]) -> list[str]:
    """The joined paths of a node and all its ancestors, the root (``""``) first."""
    return [join_path(segments[:i]) for i in range(len(segments) + 1)]
