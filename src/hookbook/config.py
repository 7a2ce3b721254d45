"""Settings objects and the YAML configuration file.

Nothing here reads the environment at import time: :func:`load_config` reads a
file and substitutes ``${VAR}`` from the environment when it is called, and
:class:`Settings` is plain data that :func:`hookbook.server.create_app` turns
into a running server.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigurationError, validation_message
from .paths import MAX_KEY_LENGTH
from .webhooks.policy import DEFAULT_RETRY_AFTER_CAP, DEFAULT_RETRY_SCHEDULE, check_schedule

__all__ = [
    "SCOPES",
    "ApiKey",
    "Limits",
    "Settings",
    "WebhookSettings",
    "load_config",
    "parse_settings",
]

Scope = Literal[
    "admin",
    "read:metadata",
    "write:metadata",
    "read:webhooks",
    "write:webhooks",
    "read:operations",
]
SCOPES: tuple[str, ...] = (
    "read:metadata",
    "write:metadata",
    "read:webhooks",
    "write:webhooks",
    "read:operations",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKey(_Strict):
    """An API key and its scopes; ``admin`` means all of them.

    A key is at least 8 word characters (letters, digits, ``_``): the Tiled
    client refuses to send any other key.
    """

    key: str = Field(min_length=8, pattern=r"^\w+$")
    scopes: tuple[Scope, ...] = ("admin",)

    def grants(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class WebhookSettings(_Strict):
    """The ``webhooks:`` section. Its presence mounts the webhook routes.

    Tiled's settings keep Tiled's meaning (``secret_keys``, ``allow_http``,
    ``allow_private_addresses``, ``blocked_networks``, ``allow_delivery_hosts``);
    the rest tune the delivery engine and have safe defaults.
    """

    secret_keys: tuple[str, ...] = Field(
        description="Keys that encrypt signing secrets at rest; the first encrypts, all decrypt."
    )
    allow_http: bool = Field(False, description="Accept plain http:// targets (development).")
    allow_private_addresses: bool = Field(
        False, description="Let targets resolve to loopback/private addresses (development)."
    )
    blocked_networks: tuple[str, ...] = Field((), description="Extra CIDRs to refuse.")
    allow_delivery_hosts: tuple[str, ...] = Field(
        (), description="Host names let through the address checks."
    )
    retry_schedule: tuple[float, ...] = Field(
        DEFAULT_RETRY_SCHEDULE, description="Seconds between attempts; attempts = len + 1."
    )
    retry_after_cap: float = Field(
        DEFAULT_RETRY_AFTER_CAP, ge=0, description="Longest Retry-After honoured (s)."
    )
    connect_timeout: float = Field(5.0, gt=0, description="Connect timeout of an attempt (s).")
    read_timeout: float = Field(10.0, gt=0, description="Read timeout of an attempt (s).")
    resolve_timeout: float = Field(5.0, gt=0, description="DNS timeout of an attempt (s).")
    lease_seconds: float = Field(
        30.0, gt=0, description="How long a claimed delivery stays with its worker."
    )
    poll_interval: float = Field(
        1.0, gt=0, description="Fallback polling period of the worker (s)."
    )
    max_in_flight: int = Field(64, ge=1, description="Deliveries in flight at once.")
    max_in_flight_per_host: int = Field(8, ge=1, description="In flight to one host at once.")
    auto_disable_after: int = Field(
        20, ge=0, description="Consecutive failed deliveries that disable a webhook (0: never)."
    )
    retention_days: float = Field(30.0, gt=0, description="Settled history older than this goes.")
    response_excerpt_bytes: int = Field(1024, ge=0, description="Response body kept per attempt.")
    max_response_bytes: int = Field(64 * 1024, ge=0, description="Response body read at most.")
    max_url_length: int = Field(2048, ge=16, description="Longest target URL accepted.")
    max_webhooks: int = Field(10_000, ge=1, description="Webhooks per server at most.")
    egress_proxy: str | None = Field(
        None, description="An egress proxy for deliveries; it then enforces address rules."
    )
    ca_bundle: str | None = Field(None, description="CA bundle for https targets.")
    shutdown_grace: float = Field(
        1.0, ge=0, description="How long stop waits for in-flight attempts (s)."
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        description="Failed attempts in a row (no response, 408, 429, 5xx) after which an "
        "endpoint's deliveries are held back while one probe at a time tests it.",
    )
    breaker_backoff: float = Field(
        1.0, gt=0, description="Wait before the first probe of a held-back endpoint (s)."
    )
    breaker_max_backoff: float = Field(
        60.0, gt=0, description="Longest wait between probes; the wait doubles up to it (s)."
    )
    disable_endpoint_after: float = Field(
        86400.0,
        ge=0,
        description="Disable the webhooks of an endpoint that has failed without a success "
        "for this long (s; 0: never).",
    )
    group_commit_wait: float = Field(
        0.002,
        ge=0,
        le=1,
        description="How long the outcome of an attempt waits for others to share "
        "its transaction, while attempts are in flight (s).",
    )
    group_commit_size: int = Field(
        128, ge=1, description="Outcomes recorded in one transaction at most."
    )

    @field_validator("secret_keys")
    @classmethod
    def _keys_usable(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys or any(not str(k).strip() for k in keys):
            raise ValueError(
                "webhooks.secret_keys must list at least one non-empty key "
                "(the first encrypts signing secrets, all decrypt)"
            )
        return keys

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule_ok(cls, schedule: Any) -> tuple[float, ...]:
        return check_schedule(schedule)  # a ConfigurationError naming the setting


class Limits(_Strict):
    """Caps on what one request may carry, and on what one node may hold.

    Every request body is capped by its route before it is read: webhook
    bodies at ``max_webhook_body_bytes``, catalog JSON bodies at
    ``max_json_body_bytes``, data at ``max_data_bytes``; a body over its cap
    is a 413, and a request without a valid key is refused (401) before any of
    its body is read.
    """

    max_key_length: int = Field(MAX_KEY_LENGTH, ge=1, description="Longest node key.")
    max_path_depth: int = Field(
        64, ge=1, le=1000, description="Deepest node: segments from the root to it (422 below)."
    )
    max_metadata_bytes: int = Field(
        256 * 1024, ge=2, description="Largest metadata object, as JSON (413 above)."
    )
    max_metadata_depth: int = Field(
        100, ge=1, le=200, description="Deepest nesting of objects and lists in metadata."
    )
    max_structure_bytes: int = Field(
        512 * 1024,
        ge=1024,
        description="Largest array or table structure (shape, chunks, dims, Arrow schema, "
        "columns), as JSON (413 above).",
    )
    max_table_columns: int = Field(1024, ge=1, description="Most columns in a table (413 above).")
    max_table_partitions: int = Field(
        10_000, ge=1, le=2**31 - 1, description="Most partitions a table declares (413 above)."
    )
    max_array_dims: int = Field(32, ge=1, le=32, description="Most axes of an array (422 above).")
    max_data_bytes: int = Field(
        1024**3,
        ge=1,
        description="Largest array or table, as uploaded and as decoded (413 above).",
    )
    max_json_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest JSON body of a catalog request (create, metadata update): "
        "metadata, specs and structure with their framing (413 above).",
    )
    max_webhook_body_bytes: int = Field(
        8 * 1024, ge=1024, description="Largest body of a webhook request (413 above)."
    )
    max_patch_operations: int = Field(
        1000, ge=1, description="Most operations in one JSON Patch of metadata (413 above)."
    )
    max_page_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Most bytes of metadata and structures in one page of a listing: a "
        "page stops before the node that would pass it (the next page carries on).",
    )


class StorageSettings(_Strict):
    """How long data that no node refers to is kept on disk."""

    retire_after: float = Field(
        60.0,
        ge=0,
        description="Replaced, compacted or deleted data is removed this long after "
        "(s), so reads in flight can finish.",
    )
    sweep_after: float = Field(
        600.0,
        ge=0,
        description="At start-up, files no node refers to (left by writes that never "
        "committed) are removed once this old (s); a live peer's newer files are kept.",
    )
    compact_on_close: bool = Field(
        True, description="Merge each table partition's fragments when its stream closes."
    )


class Settings(_Strict):
    """Everything a server needs; built from a config file or by SimpleServer."""

    directory: Path
    database: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file hookbook.db in directory."
    )
    api_keys: tuple[ApiKey, ...] = Field(min_length=1)
    webhooks: WebhookSettings | None = None
    limits: Limits = Limits()
    storage: StorageSettings = StorageSettings()
    serve_http: bool = Field(True, description="Serve the HTTP API (false: a worker only).")
    run_worker: bool = Field(True, description="Run the delivery worker in this process.")
    lock_directory: bool | None = Field(
        None, description="Refuse a second server on the directory (default: when on SQLite)."
    )
    keep_alive_timeout: int = Field(
        75,
        ge=1,
        description="Seconds an idle keep-alive connection stays open. Keep it well above "
        "clients' own (5 s for httpx and the tiled client), so a client never reuses a "
        "connection the server is closing at that moment (a reset, with no response).",
    )

    @property
    def database_url(self) -> str:
        if self.database:
            return self.database
        return f"sqlite+aiosqlite:///{self.directory / 'hookbook.db'}"


def parse_settings(data: Mapping[str, Any]) -> Settings:
    """Validate settings, raising :class:`.ConfigurationError` naming each bad setting."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = validation_message(exc, root="config")
        raise ConfigurationError(f"invalid configuration: {problems}") from None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Variables:
    """``${VAR}`` substituted into string values *after* YAML has parsed the file.

    Each ``${VAR}`` in the text is first replaced by a placeholder that YAML reads as
    plain text wherever it stands (a flow list such as ``[${KEY}]`` included); the
    parsed values then get the environment's values. So a value is always one
    string, whatever it holds (``a, b`` is not two keys, ``*x`` is not an alias),
    and YAML never sees a secret, so none of its errors can print one. A
    ``${VAR}`` in a comment vanishes with the comment and needs no variable.
    """

    def __init__(self, text: str) -> None:
        self._prefix = f"hookbookvar{secrets.token_hex(8)}n"
        self.names: list[str] = []
        self._placeholder = re.compile(re.escape(self._prefix) + r"(\d+)x")
        self.text = _VAR.sub(self._mark, text)

    def _mark(self, match: re.Match[str]) -> str:
        self.names.append(match.group(1))
        return f"{self._prefix}{len(self.names) - 1}x"

    def restore(self, text: str) -> str:
        """``text`` with placeholders shown as the ``${VAR}`` they stand for (for errors)."""
        return self._placeholder.sub(lambda m: f"${{{self.names[int(m.group(1))]}}}", text)

    def substitute(self, value: Any, environ: Mapping[str, str], where: str = "") -> Any:
        """``value`` (parsed YAML) with every placeholder replaced from ``environ``."""
        if isinstance(value, dict):
            return {
                key: self.substitute(item, environ, f"{where}.{key}" if where else str(key))
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.substitute(item, environ, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, str):

            def replace(match: re.Match[str]) -> str:
                name = self.names[int(match.group(1))]
                if name not in environ:
                    raise ConfigurationError(
                        f"{where or 'the file'}: environment variable {name} is not set "
                        f"(used as ${{{name}}})",
                        variable=name,
                        setting=where,
                    )
                return environ[name]

            return self._placeholder.sub(replace, value)
        return value


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read a YAML config file: ``${VAR}`` comes from the environment, paths from its folder."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None
    variables = _Variables(text)
    try:
        parsed = yaml.safe_load(variables.text) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {variables.restore(str(exc))}") from None
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"{path}: the top level must be a mapping of settings")
    try:
        data = variables.substitute(parsed, environ)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc.detail}", **exc.context) from None
    base = path.resolve().parent
    data.setdefault("directory", ".")
    if isinstance(data["directory"], str):  # anything else: parse_settings names it
        data["directory"] = str((base / Path(data["directory"]).expanduser()).resolve())
    if isinstance(data.get("database"), str):
        data["database"] = _sqlite_relative_to(data["database"], base)
    webhooks = data.get("webhooks")
    if isinstance(webhooks, dict) and isinstance(webhooks.get("ca_bundle"), str):
        webhooks["ca_bundle"] = str(base / Path(webhooks["ca_bundle"]).expanduser())
    return parse_settings(data)


def _sqlite_relative_to(url: str, base: Path) -> str:
    """A SQLite URL with a relative file path, made relative to ``base`` (other URLs as given)."""
    if not url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # parse_settings and the engine report it
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    if Path(database).expanduser().is_absolute():
        return url
    resolved = parsed.set(database=str((base / Path(database)).resolve()))
    return resolved.render_as_string(hide_password=False)
