"""hookbook.webhooks.secrets: Fernet encryption at rest, rotation, settings."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from hookbook.errors import ConfigurationError
from hookbook.webhooks.secrets import (
    SecretBox,
    SecretUnavailable,
    derive_fernet_key,
    generate_key,
)

SECRET = "whsec-like signing secret ✓"


def test_round_trip():
    box = SecretBox([generate_key()])
    token = box.encrypt(SECRET)
    assert isinstance(token, str)
    assert SECRET not in token
    assert box.decrypt(token) == SECRET


def test_each_encryption_is_different():
    box = SecretBox(["a passphrase that is long enough"])
    assert box.encrypt(SECRET) != box.encrypt(SECRET)


def test_generate_key_is_a_fernet_key():
    key = generate_key()
    assert isinstance(key, str)
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert generate_key() != key
    Fernet(key)  # accepted as is


def test_fernet_key_is_used_as_is():
    key = generate_key()
    token = SecretBox([key]).encrypt(SECRET)
    assert Fernet(key).decrypt(token.encode()).decode() == SECRET
    assert derive_fernet_key(key) == key.encode()


def test_other_strings_derive_a_key_with_sha256():
    passphrase = "correct horse battery staple"
    token = SecretBox([passphrase]).encrypt(SECRET)
    derived = base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode("utf-8")).digest())
    assert derive_fernet_key(passphrase) == derived
    assert Fernet(derived).decrypt(token.encode()).decode() == SECRET


@pytest.mark.parametrize(
    "almost",
    [
        generate_key()[:-1],  # 43 characters
        generate_key().rstrip("=") + "A",  # no padding
        "+" * 43 + "=",  # standard, not URL-safe, base64 alphabet
    ],
)
def test_strings_that_are_not_quite_fernet_keys_are_passphrases(almost):
    expected = base64.urlsafe_b64encode(hashlib.sha256(almost.encode()).digest())
    assert derive_fernet_key(almost) == expected


def test_surrounding_whitespace_is_ignored():
    key = generate_key()
    token = SecretBox([key]).encrypt(SECRET)
    assert SecretBox([f"  {key}\n"]).decrypt(token) == SECRET
    token = SecretBox(["passphrase\n"]).encrypt(SECRET)
    assert SecretBox(["passphrase"]).decrypt(token) == SECRET


def test_rotation_old_tokens_still_decrypt_with_new_key_first():
    old, new = generate_key(), "a new passphrase key"
    token = SecretBox([old]).encrypt(SECRET)
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == SECRET
    # new encryptions use the first key only
    fresh = rotated_box.encrypt(SECRET)
    assert SecretBox([new]).decrypt(fresh) == SECRET
    with pytest.raises(SecretUnavailable):
        SecretBox([old]).decrypt(fresh)


def test_rotate_re_encrypts_with_the_first_key():
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt(SECRET)
    rotated = SecretBox([new, old]).rotate(token)
    assert rotated != token
    assert SecretBox([new]).decrypt(rotated) == SECRET  # the old key can now be dropped
    with pytest.raises(SecretUnavailable):
        SecretBox([old]).decrypt(rotated)


def test_wrong_key_is_secret_unavailable():
    token = SecretBox([generate_key()]).encrypt(SECRET)
    with pytest.raises(SecretUnavailable, match="cannot be decrypted with the configured") as info:
        SecretBox([generate_key()]).decrypt(token)
    assert "webhooks.secret_keys" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("token", ["", "garbage", "gAAAAA" + "A" * 80, "ünïcode"])
def test_corrupt_tokens_are_secret_unavailable(token):
    box = SecretBox([generate_key()])
    with pytest.raises(SecretUnavailable):
        box.decrypt(token)
    with pytest.raises(SecretUnavailable):
        box.rotate(token)


def test_secret_unavailable_is_in_the_error_tree():
    import hookbook.errors

    assert SecretUnavailable is hookbook.errors.SecretUnavailable
    assert issubclass(SecretUnavailable, hookbook.errors.HookbookError)
    assert SecretUnavailable.status_code == 500  # the server's problem, not the caller's
    rebuilt = hookbook.errors.error_from_response(
        500, {"detail": "no key decrypts it", "error": "SecretUnavailable"}
    )
    assert type(rebuilt) is SecretUnavailable


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "is empty: configure at least one key"),
        ((), "is empty"),
        ([""], "webhooks.secret_keys[0] is empty or blank"),
        (["   "], "webhooks.secret_keys[0] is empty or blank"),
        ([generate_key(), "\n"], "webhooks.secret_keys[1] is empty or blank"),
        ("a-single-key-string", "must be a list of keys"),
        (None, "must be a list of keys"),
        ([b"bytes-key"], "webhooks.secret_keys[0] must be a string"),
        ([None], "webhooks.secret_keys[0] must be a string"),
    ],
)
def test_bad_settings_name_the_setting(keys, message):
    with pytest.raises(ConfigurationError) as info:
        SecretBox(keys)
    assert message in str(info.value)
    assert "webhooks.secret_keys" in str(info.value)
    assert info.value.context == {"setting": "webhooks.secret_keys"}


def test_repr_never_shows_keys():
    key, passphrase = generate_key(), "my-private-passphrase"
    box = SecretBox([key, passphrase])
    text = f"{box!r} {box!s}"
    assert key not in text
    assert passphrase not in text
    assert derive_fernet_key(passphrase).decode() not in text
    assert repr(box) == "<SecretBox: 2 keys>"
    assert repr(SecretBox([key])) == "<SecretBox: 1 key>"


def test_box_has_no_key_attributes_to_leak():
    box = SecretBox(["my-private-passphrase"])
    assert not hasattr(box, "__dict__")
    assert not hasattr(box, "keys")
