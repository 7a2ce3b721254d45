"""JSON Patch (RFC 6902) of metadata, applied on a budget.

A patch is small; what it asks for need not be. Each ``copy`` can double the
document, so 30 operations in a kilobyte could ask for gigabytes, and a check of
the result at the end comes too late. So:

- a patch has at most ``max_operations`` operations;
- the document's size is known after every operation, and the patch stops at
  the first one that takes it over ``max_bytes`` (a 413 naming the operation);
- the work is capped: every byte measured or copied counts, and a patch that
  would handle more than :data:`WORK_FACTOR` times ``max_bytes`` stops (a 413).

The size is tracked, not recomputed: each operation's growth is bounded from
what it adds (its value, the ``from`` it copies, the key) less what it removes,
each measured once. Only when that bound passes ``max_bytes`` is the document
measured exactly, so an ordinary patch costs about what it carries.

Problems with the patch itself (a path that does not resolve, a failed
``test``) are a :class:`~hookbook.errors.ConflictError` (409): the client
computed the patch against a copy that is no longer current.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ClientInputError, ConflictError, PayloadTooLargeError

#: The most bytes a patch may copy and measure, as a multiple of ``max_bytes``.
WORK_FACTOR = 32


@dataclass(frozen=True)
class PatchBudget:
    max_bytes: int
    max_operations: int


def apply_json_patch(document: Any, operations: Sequence[Any], budget: PatchBudget) -> Any:
    """``document`` (left unchanged) with ``operations`` applied, within ``budget``."""
    import jsonpatch
    import jsonpointer

    if len(operations) > budget.max_operations:
        raise PayloadTooLargeError(
            f"the patch has {len(operations)} operations; the limit is {budget.max_operations}",
            size=len(operations),
            limit=budget.max_operations,
        )
    try:
        doc = copy.deepcopy(document)
        size = work = _size(doc)
        for index, op in enumerate(operations):
            growth, cost = _growth(doc, op)
            work += cost
            doc = jsonpatch.apply_patch(doc, [op], in_place=True)
            size += growth
            if size > budget.max_bytes:
                size = _size(doc)  # the bound is loose: measure exactly
                work += size
                if size > budget.max_bytes:
                    raise PayloadTooLargeError(
                        f"operation {index} of the patch takes the metadata to {size} bytes "
                        f"as JSON; the limit is {budget.max_bytes}",
                        size=size,
                        limit=budget.max_bytes,
                    )
            if work > WORK_FACTOR * budget.max_bytes:
                raise PayloadTooLargeError(
                    f"the patch copies and moves too much ({work} bytes by operation {index}; "
                    f"the limit is {WORK_FACTOR * budget.max_bytes}): send the new metadata "
                    "whole instead (PUT)",
                    limit=WORK_FACTOR * budget.max_bytes,
                )
    except RecursionError:
        raise ClientInputError("the patched metadata is nested too deeply") from None
    except (
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as err:
        raise ConflictError(f"the patch does not apply: {err}") from None
    return doc


def _size(value: Any) -> int:
    return len(json.dumps(value))


def _growth(doc: Any, op: Any) -> tuple[int, int]:
    """An upper bound on how many bytes ``op`` adds to ``doc``, and the bytes
    measured to know it. A malformed operation counts as nothing: applying it
    fails with the library's own message."""
    import jsonpointer

    if not isinstance(op, dict):
        return 0, 0
    kind, path = op.get("op"), op.get("path")
    if kind == "test" or not isinstance(path, str):
        return 0, 0
    parent: Any
    try:
        pointer = jsonpointer.JsonPointer(path)
        parent, key = pointer.to_last(doc) if pointer.parts else (None, None)
    except (jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
        return 0, 0
    if kind in ("replace", "remove"):
        overwrites = _holds(parent, key)
    else:  # add and copy overwrite an object's member, and insert into a list
        overwrites = isinstance(parent, dict) and key in parent
    old = _size(parent[key]) if overwrites else 0
    framing = len(json.dumps(str(key))) + 4  # '"key": ' and ', '
    if kind == "remove":
        return -old, old
    if kind == "move":
        return framing, 0  # the value moves; only its key may be longer
    if kind == "copy":
        try:
            added = _size(jsonpointer.resolve_pointer(doc, op.get("from", "")))
        except (jsonpointer.JsonPointerException, KeyError, IndexError, TypeError):
            return 0, old
    else:  # add, replace
        added = _size(op.get("value"))
    return added + framing - old, added + old


def _holds(parent: Any, key: Any) -> bool:
    if isinstance(parent, dict):
        return key in parent
    return isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent)
