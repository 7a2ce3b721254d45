"""Node keys and URL paths on the wire."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from ..errors import ClientInputError

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def validate_key(key: str) -> str:
    """Check that ``key`` can name a node, and return it.

    A key is one path segment: a non-empty string of at most 255 characters,
    without ``/``, control characters, or the special names ``.`` and
    ``..``. (The tiled client generates a ``uuid4`` string when the user
    gives no key.)
    """
    if not isinstance(key, str):
        raise ClientInputError(f"a key must be a string, not {type(key).__name__}")
    if key == "":
        raise ClientInputError("a key must not be empty")
    if len(key) > 255:
        raise ClientInputError(f"a key must be at most 255 characters, not {len(key)}")
    if "/" in key:
        raise ClientInputError(f"a key must not contain '/': {key!r}")
    if key in {".", ".."}:
        raise ClientInputError(f"{key!r} is not a valid key")
    if _CONTROL_CHARACTERS.search(key):
        raise ClientInputError(f"a key must not contain control characters: {key!r}")
    return key


def path_segments(path: str | None) -> list[str]:
    """Split the ``{path}`` part of a route into keys, dropping empty segments.

    The tiled client builds some URLs by appending ``/key`` to a self link
    that may end with ``/`` (the root's is ``.../metadata/``), so paths such
    as ``/a//b/`` reach the server: they mean ``["a", "b"]``.
    """
    if not path:
        return []
    return [segment for segment in path.split("/") if segment]


def quoted_path(segments: Sequence[str]) -> str:
    """The keys joined with ``/``, each percent-encoded (for links)."""
    return "/".join(quote(segment, safe="") for segment in segments)
