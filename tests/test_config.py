"""The YAML configuration file: ${VAR} substitution, paths relative to the file,
and every invalid setting named in the error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hookbook.config import Limits, Settings, WebhookSettings, load_config, parse_settings
from hookbook.errors import ConfigurationError

KEY = "admin_key_0123456789"


def write(tmp_path: Path, text: str, name: str = "hookbook.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_the_design_example_loads(tmp_path):
    config = write(
        tmp_path,
        """\
        database: postgresql+asyncpg://postgres@127.0.0.1:5432/test  # default: SQLite
        directory: ./catalog-data          # data files (and the default SQLite file)
        api_keys:
          - key: ${HOOKBOOK_API_KEY}
            scopes: [admin]
          - key: ${READER}
            scopes: [read:metadata, read:webhooks]
        webhooks:
          secret_keys: [${HOOKBOOK_SECRET_KEY}]   # strings; first encrypts, all decrypt
          allow_http: false
          allow_private_addresses: false
          blocked_networks: []
          allow_delivery_hosts: []
          retry_schedule: [1, 5]
        """,
    )
    environ = {"HOOKBOOK_API_KEY": KEY, "READER": "reader_key_99", "HOOKBOOK_SECRET_KEY": "sk"}
    settings = load_config(config, environ=environ)
    assert isinstance(settings, Settings)
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    assert settings.directory == (tmp_path / "catalog-data").resolve()
    assert [k.key for k in settings.api_keys] == [KEY, "reader_key_99"]
    assert settings.api_keys[0].grants("write:webhooks")
    assert settings.api_keys[1].grants("read:webhooks")
    assert not settings.api_keys[1].grants("write:metadata")
    assert settings.webhooks == WebhookSettings(secret_keys=("sk",), retry_schedule=(1, 5))


def test_variables_come_from_the_environment(tmp_path, monkeypatch):
    config = write(
        tmp_path,
        """\
        database: postgresql+asyncpg://${PGUSER_X}:${PGPASS_X}@db.example:5432/catalog
        api_keys:
          - key: prefix_${KEY_PART}_suffix
        """,
    )
    monkeypatch.setenv("PGUSER_X", "me")
    monkeypatch.setenv("PGPASS_X", "pw")
    monkeypatch.setenv("KEY_PART", "abc")
    settings = load_config(config)
    assert settings.database == "postgresql+asyncpg://me:pw@db.example:5432/catalog"
    assert settings.api_keys[0].key == "prefix_abc_suffix"


def test_an_unset_variable_is_an_error_naming_it(tmp_path):
    config = write(
        tmp_path,
        """\
        api_keys:
          - key: ${HOOKBOOK_TEST_SURELY_UNSET}
        """,
    )
    with pytest.raises(ConfigurationError) as info:
        load_config(config, environ={})
    message = str(info.value)
    assert "HOOKBOOK_TEST_SURELY_UNSET" in message
    assert "not set" in message
    assert str(config) in message
    assert "api_keys[0].key" in message  # the setting, as well as the variable
    assert info.value.context == {
        "variable": "HOOKBOOK_TEST_SURELY_UNSET",
        "setting": "api_keys[0].key",
    }


@pytest.mark.parametrize(
    "secret",
    [
        "@starts-with-an-at",
        "*looks-like-an-alias",
        "a: b]",
        "a, b",
        "[1, 2]",
        "{x: 1}",
        "# not a comment",
        "'quoted'",
        '"double"',
        "!!python/object:os.system",
        "true",
        "null",
        "  spaces around  ",
        "line\nbreak",
    ],
)
def test_a_variable_is_always_one_string_whatever_it_holds(tmp_path, secret):
    config = write(
        tmp_path,
        """\
        api_keys: [{key: ${KEY}}]
        webhooks:
          secret_keys: [${SECRET}]   # a flow list, as in the documented example
          blocked_networks:
            - ${SECRET}
        """,
    )
    settings_data = load_config(config, environ={"KEY": KEY, "SECRET": secret})
    assert settings_data.webhooks.secret_keys == (secret,)
    assert settings_data.webhooks.blocked_networks == (secret,)


def test_errors_name_the_setting_and_variable_never_the_value(tmp_path):
    secret = "s3cr3t-@*value-with: yaml]"
    environ = {"KEY": KEY, "SECRET": secret, "BAD_KEY": secret}
    for text in (
        # Invalid YAML around a variable: the error shows ${SECRET}, not its value.
        "api_keys: [{key: ${KEY}}\nwebhooks: {secret_keys: [${SECRET}]\n",
        # A value the settings refuse: named, not printed.
        "api_keys:\n  - key: ${BAD_KEY}\n",
        # Unset: named with the setting it was for.
        "api_keys: [{key: ${KEY}}]\ndatabase: ${UNSET_DATABASE_URL}\n",
    ):
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(ConfigurationError) as info:
            load_config(tmp_path / "c.yaml", environ=environ)
        message = str(info.value)
        assert secret not in message, message
        assert "s3cr3t" not in message, message
    assert "database" in message and "UNSET_DATABASE_URL" in message


def test_a_commented_out_line_needs_no_variable(tmp_path):
    config = write(
        tmp_path,
        f"""\
        # database: ${{DATABASE_URL_NOT_SET}}
        api_keys:
          - key: {KEY}
            # - key: ${{ANOTHER_UNSET}}
        """,
    )
    assert load_config(config, environ={}).database is None


def test_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    config = write(
        tmp_path,
        f"""\
        directory: data/here
        api_keys: [{{key: {KEY}}}]
        webhooks:
          secret_keys: [k]
          ca_bundle: certs/ca.pem
        """,
        name="conf/hookbook.yaml",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_config(Path("..") / "conf" / "hookbook.yaml")
    assert settings.directory == (tmp_path / "conf" / "data" / "here").resolve()
    assert Path(settings.webhooks.ca_bundle) == (tmp_path / "conf" / "certs" / "ca.pem")
    assert settings.database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'conf' / 'data' / 'here' / 'hookbook.db').resolve()}"
    )
    assert config.exists()


def test_the_default_directory_is_the_config_files_folder(tmp_path, monkeypatch):
    config = write(tmp_path, f"api_keys: [{{key: {KEY}}}]\n", name="sub/hookbook.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config(config).directory == config.parent.resolve()


def test_absolute_and_home_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    absolute = tmp_path / "abs"
    config = write(tmp_path, f"directory: {absolute}\napi_keys: [{{key: {KEY}}}]\n")
    assert load_config(config).directory == absolute
    config = write(tmp_path, f"directory: ~/cat\napi_keys: [{{key: {KEY}}}]\n")
    assert load_config(config).directory == (tmp_path / "home" / "cat").resolve()


def test_a_relative_sqlite_database_is_relative_to_the_config_file(tmp_path, monkeypatch):
    config = write(
        tmp_path,
        f"database: sqlite+aiosqlite:///db/catalog.db\napi_keys: [{{key: {KEY}}}]\n",
        name="conf/hookbook.yaml",
    )
    monkeypatch.chdir(tmp_path)
    expected = (tmp_path / "conf" / "db" / "catalog.db").resolve()
    assert load_config(config).database == f"sqlite+aiosqlite:///{expected}"
    config = write(
        tmp_path, f"database: sqlite+aiosqlite:///{expected}\napi_keys: [{{key: {KEY}}}]\n"
    )
    assert load_config(config).database == f"sqlite+aiosqlite:///{expected}"


@pytest.mark.parametrize(
    "text,words",
    [
        (f"api_keys: [{{key: {KEY}}}]\ndatabse: x\n", ["databse", "Extra inputs"]),
        ("directory: .\n", ["api_keys", "required"]),
        ("api_keys: []\n", ["api_keys"]),
        ("api_keys: [{key: short}]\n", ["api_keys.0.key"]),
        ("api_keys: [{key: has-dash-in-it}]\n", ["api_keys.0.key"]),
        (f"api_keys: [{{key: {KEY}, scopes: [read:all]}}]\n", ["api_keys.0.scopes"]),
        (f"api_keys: [{{key: {KEY}}}]\nwebhooks: {{}}\n", ["webhooks.secret_keys"]),
        (f"api_keys: [{{key: {KEY}}}]\nwebhooks: {{secret_keys: []}}\n", ["webhooks.secret_keys"]),
        (
            f"api_keys: [{{key: {KEY}}}]\nwebhooks: {{secret_keys: [k], retry_schedule: [-1]}}\n",
            ["webhooks.retry_schedule", ">= 0"],
        ),
        (
            f"api_keys: [{{key: {KEY}}}]\nwebhooks: {{secret_keys: [k], allow_htp: true}}\n",
            ["webhooks.allow_htp"],
        ),
        (
            f"api_keys: [{{key: {KEY}}}]\nwebhooks: {{secret_keys: [k], lease_seconds: 0}}\n",
            ["webhooks.lease_seconds"],
        ),
        (f"api_keys: [{{key: {KEY}}}]\nlimits: {{max_key_length: 0}}\n", ["limits.max_key_length"]),
        (f"api_keys: [{{key: {KEY}}}]\ndirectory: [1, 2]\n", ["directory"]),
        (f"api_keys: [{{key: {KEY}}}]\ndirectory: null\n", ["directory"]),
    ],
)
def test_invalid_settings_are_named(tmp_path, text, words):
    config = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_config(config, environ={})
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "text,words",
    [
        ("api_keys: [\n", ["not valid YAML"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
    ],
)
def test_unreadable_files(tmp_path, text, words):
    config = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_config(config, environ={})
    for word in words:
        assert word in str(info.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_an_empty_file_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigurationError, match="api_keys"):
        load_config(write(tmp_path, ""))


def test_parse_settings_defaults(tmp_path):
    settings = parse_settings({"directory": str(tmp_path), "api_keys": [{"key": KEY}]})
    assert settings.webhooks is None
    assert settings.limits == Limits()
    assert settings.limits.max_metadata_bytes == 256 * 1024
    assert settings.api_keys[0].scopes == ("admin",)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'hookbook.db'}"
    hooks = WebhookSettings(secret_keys=("k",))
    assert hooks.retry_schedule == (1.0, 5.0)
    assert (hooks.allow_http, hooks.allow_private_addresses) == (False, False)
