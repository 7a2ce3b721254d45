"""JSON Patch on a budget: the size is known after every operation, the operations
are counted, and the work is capped, so a small patch cannot ask for gigabytes."""

from __future__ import annotations

import json
import re

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookbook.errors import ClientInputError, ConflictError, PayloadTooLargeError
from hookbook.patching import WORK_FACTOR, PatchBudget, apply_json_patch

BUDGET = PatchBudget(max_bytes=256 * 1024, max_operations=1000)


def doubling(n: int) -> list[dict]:
    """``n`` operations, each copying the whole document into itself: 2**n times the size."""
    return [{"op": "add", "path": "/a", "value": "x" * 64}] + [
        {"op": "copy", "from": "", "path": f"/c{i}"} for i in range(n)
    ]


def test_copies_that_double_the_document_stop_at_the_first_one_over_the_limit():
    with pytest.raises(PayloadTooLargeError, match=r"operation \d+ of the patch") as info:
        apply_json_patch({}, doubling(40), BUDGET)
    assert info.value.context["limit"] == BUDGET.max_bytes
    # 64 bytes doubled: over 256 KiB after about 12 copies, long before 40.
    stopped_at = int(re.search(r"operation (\d+)", info.value.detail).group(1))
    assert 10 <= stopped_at <= 14
    assert info.value.context["size"] <= 2 * BUDGET.max_bytes + 1024


def test_the_number_of_operations_is_capped():
    ops = [{"op": "test", "path": "", "value": {}}] * 1001
    with pytest.raises(PayloadTooLargeError, match="1001 operations; the limit is 1000"):
        apply_json_patch({}, ops, BUDGET)


def test_copying_and_removing_again_and_again_runs_out_of_work():
    big = {"big": "x" * 100_000}
    ops = []
    for _ in range(500):
        ops += [{"op": "copy", "from": "/big", "path": "/copy"}, {"op": "remove", "path": "/copy"}]
    with pytest.raises(PayloadTooLargeError, match="copies and moves too much") as info:
        apply_json_patch(big, ops, BUDGET)
    assert info.value.context["limit"] == WORK_FACTOR * BUDGET.max_bytes


def test_many_ordinary_operations_on_a_document_near_the_limit_are_fine():
    # 250 kB of metadata, a thousand replacements: what a client's diff sends.
    document = {f"k{i}": "v" * 240 for i in range(1000)}
    assert len(json.dumps(document)) < BUDGET.max_bytes
    ops = [{"op": "replace", "path": f"/k{i}", "value": "w" * 240} for i in range(1000)]
    result = apply_json_patch(document, ops, BUDGET)
    assert result == {f"k{i}": "w" * 240 for i in range(1000)}
    assert document["k0"] == "v" * 240  # the input is left alone


def test_a_result_under_the_limit_passes_even_when_the_bound_does_not():
    # Each add then remove of a 200 kB value: the document never holds two of them.
    ops = []
    for i in range(3):
        ops += [
            {"op": "add", "path": "/v", "value": str(i) * 200_000},
            {"op": "remove", "path": "/v"},
        ]
    assert apply_json_patch({"a": 1}, ops, BUDGET) == {"a": 1}


def test_a_document_nested_too_deeply_by_copies_is_refused():
    document = {"a": None}
    ops = [{"op": "copy", "from": "", "path": "/a" * (i + 1)} for i in range(2000)]
    with pytest.raises(ClientInputError, match="nested too deeply"):
        apply_json_patch(document, ops, PatchBudget(max_bytes=10**9, max_operations=5000))


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/nope", "value": 1}],
        [{"op": "copy", "from": "/nope", "path": "/b"}],
        [{"op": "move", "from": "/nope", "path": "/b"}],
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "add", "path": "no-slash", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
    ],
)
def test_a_patch_that_does_not_apply_is_a_conflict(ops):
    with pytest.raises(ConflictError, match="patch does not apply"):
        apply_json_patch({"a": 1}, ops, BUDGET)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
pointers = st.lists(st.sampled_from(["a", "b", "0", "1", "-"]), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts)
)
operations = st.builds(
    lambda op, path, source, value: {"op": op, "path": path, "from": source, "value": value},
    st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
    pointers,
    pointers,
    json_values,
)


@settings(max_examples=100, deadline=None)
@given(
    document=st.dictionaries(st.sampled_from(["a", "b"]), json_values),
    ops=st.lists(operations, max_size=6),
)
def test_the_result_is_what_jsonpatch_gives_and_the_tracked_size_is_an_upper_bound(document, ops):
    try:
        expected = jsonpatch.apply_patch(document, ops)
    except Exception:
        with pytest.raises(ConflictError):
            apply_json_patch(document, ops, BUDGET)
        return
    assert apply_json_patch(document, ops, BUDGET) == expected
    # With a limit just under the result's size, the patch is refused, never let through.
    size = len(json.dumps(expected))
    tight = PatchBudget(max_bytes=max(size - 1, 0), max_operations=1000)
    if any(len(json.dumps(d)) > tight.max_bytes for d in [document]):
        return  # over the limit from the start: not what this checks
    with pytest.raises(PayloadTooLargeError):
        apply_json_patch(document, ops, tight)
