"""Tests of hookbook.paths: the one module for keys and paths (server, client, receiver)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hookbook.errors import InvalidKeyError, InvalidPathError
from hookbook.paths import (
    MAX_KEY_LENGTH,
    check_key,
    join_path,
    parse_path,
    prefixes,
    quote_path,
    split_path,
)


@pytest.mark.parametrize("key", ["a", "run-1", "ü", "with space", "k" * MAX_KEY_LENGTH])
def test_good_keys_pass(key):
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key, words",
    [
        ("", "non-empty"),
        (3, "non-empty"),
        ("a/b", "'/'"),
        (".", "reserved"),
        ("..", "reserved"),
        ("k" * (MAX_KEY_LENGTH + 1), f"the limit is {MAX_KEY_LENGTH}"),
        ("tab\there", "control character"),
        ("del\x7f", "control character"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_bad_keys_are_invalid_key_errors(key, words):
    with pytest.raises(InvalidKeyError, match=words):
        check_key(key)


def test_the_key_limit_is_the_callers():
    assert check_key("abcd", max_length=4) == "abcd"
    with pytest.raises(InvalidKeyError) as info:
        check_key("abcde", max_length=4)
    assert info.value.context == {"length": 5, "limit": 4}


def test_split_drops_empty_segments():
    assert split_path("") == ()
    assert split_path("/") == ()
    assert split_path("a//b/") == ("a", "b")
    assert split_path("/run1") == ("run1",)
    assert split_path(["a", "b"]) == ("a", "b")
    assert split_path("a/../b") == ("a", "..", "b")  # splitting checks nothing


@pytest.mark.parametrize("path", ["a/../b", "./a", ["a", ".."], ["a", ""]])
def test_parse_refuses_dot_and_empty_segments(path):
    with pytest.raises(InvalidPathError, match="invalid segment"):
        parse_path(path)


def test_join_and_prefixes():
    assert join_path(("a", "b")) == "a/b"
    assert join_path(()) == ""
    assert prefixes(("a", "b")) == ["", "a", "a/b"]


def test_quote_encodes_each_segment_and_keeps_dot_segments_literal():
    assert quote_path(["a b", "c/d", "ü"]) == "a%20b/c%2Fd/%C3%BC"
    # An HTTP client would resolve "." and ".."; encoded, they reach the server.
    assert quote_path(["a", "..", "."]) == "a/%2E%2E/%2E"
    assert quote_path(["a..b"]) == "a..b"
    assert quote_path([]) == ""


def test_importing_paths_needs_only_the_standard_library():
    code = (
        "import sys, hookbook.paths\n"
        "heavy = {'pydantic', 'httpx', 'numpy', 'fastapi', 'sqlalchemy', 'yaml'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
