"""The docs build's own Sphinx extension: everything generated at build start.

Nothing it writes is committed (see ``.gitignore``); it is rebuilt on every
``sphinx-build``, so the site cannot drift from the code:

``docs/tutorials/``
    Copies of ``notebooks/*.md`` (and any files beside them), the single source
    of the tutorials. A copy rather than a symlink: it works on every OS and
    checkout (Windows, archives, ``git`` without symlink support), Sphinx sees
    ordinary files inside its source directory, and the notebooks execute with
    the same neighbours as in ``notebooks/``. Files are rewritten only when
    their content changed and copies of deleted notebooks are removed.
    Every tutorial is marked outdated on every build, so it is executed every
    time, even when an incremental build would have kept the old output.
``docs/_generated/``
    ``http-api.md`` and ``openapi.json`` from ``create_app(...).openapi()``,
    ``configuration.md`` from the pydantic models of :mod:`hookbook.config`,
    ``events.md`` and ``events.schema.json`` from :mod:`hookbook.events`,
    ``unsupported.md`` from :data:`hookbook.protocol.UNSUPPORTED_ROUTES`. The
    reference pages include them.
A Jupyter kernelspec (in a temporary directory, put first on ``JUPYTER_PATH``)
    that runs ``sys.executable``: every notebook's kernel name is aliased to it
    (``nb_kernel_rgx_aliases`` in ``conf.py``), so the notebooks run in the
    environment that runs Sphinx, whatever kernels the machine has installed.
"""

from __future__ import annotations

import filecmp
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
NOTEBOOKS = ROOT / "notebooks"
TUTORIALS = DOCS / "tutorials"
GENERATED = DOCS / "_generated"

#: The kernel every notebook runs in (conf.py aliases all kernel names to it).
KERNEL_NAME = "hookbook-docs"

_SKIP_NAMES = {".ipynb_checkpoints", "__pycache__", ".DS_Store"}


# --------------------------------------------------------------------------- notebooks


def _notebook_files(source: Path) -> Iterator[Path]:
    """Files under ``source`` worth copying: no hidden files, caches or ``.ipynb`` pairs."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in _SKIP_NAMES or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix != ".ipynb":
            yield path


def sync_notebooks(source: Path = NOTEBOOKS, dest: Path = TUTORIALS) -> list[str]:
    """Mirror ``source`` into ``dest``; return the notebook names (``*.md``) copied."""
    if not source.is_dir() or not any(source.glob("*.md")):
        raise RuntimeError(
            f"no tutorial notebooks in {source}: the docs render and execute notebooks/*.md"
        )
    dest.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    for path in _notebook_files(source):
        target = dest / path.relative_to(source)
        wanted.add(target)
        if target.is_file() and filecmp.cmp(path, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return sorted(p.name for p in wanted if p.suffix == ".md" and p.parent == dest)


def install_kernelspec(directory: Path) -> Path:
    """Write a kernelspec named :data:`KERNEL_NAME` running this interpreter into ``directory``.

    ``directory`` is put first on ``JUPYTER_PATH``, which jupyter_client searches
    before the user's and the system's kernels.
    """
    if importlib.util.find_spec("ipykernel") is None:
        raise RuntimeError(
            f"ipykernel is not installed for {sys.executable}; the docs execute the "
            "notebooks with it: pip install -e '.[docs]'"
        )
    spec_dir = directory / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--InteractiveShell.colors=nocolor",  # plain tracebacks in the build log
        ],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (hookbook docs)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=2))
    paths = [str(directory), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)
    return spec_dir


# --------------------------------------------------------------------------- helpers


def _write(path: Path, text: str) -> None:
    """Write ``text`` only if it differs, so unchanged pages are not re-read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _cell(text: Any) -> str:
    """A markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    """``value`` as an inline code span (JSON spelling for data)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def json_type(schema: Mapping[str, Any], link: Any = None) -> str:
    """A short, readable type for a JSON Schema (``link(name)`` renders a ``$ref``)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return link(name) if link else name
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return " or ".join(_code(v) for v in schema["enum"])
    for combo in ("anyOf", "oneOf"):
        if combo in schema:
            return " or ".join(json_type(s, link) for s in schema[combo])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(json_type({**schema, "type": k}, link) for k in kind)
    if kind == "array":
        items = schema.get("items")
        return f"list of {json_type(items, link)}" if items else "list"
    if kind == "string" and schema.get("format"):
        return f"string ({schema['format']})"
    if kind == "object" and "properties" not in schema:
        return "object"
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
        if key in schema
    ]
    return f"{kind} ({', '.join(bounds)})" if bounds else str(kind or "any")


def _default(schema: Mapping[str, Any], required: bool) -> str:
    if required:
        return "required"
    if "default" in schema:
        return _code(schema["default"])
    return ""


# --------------------------------------------------------------------------- HTTP API


def _build_app() -> Any:
    from hookbook.config import Settings, WebhookSettings
    from hookbook.server import create_app

    settings = Settings(
        directory=Path(tempfile.gettempdir()) / "hookbook-docs-unused",
        api_keys=[{"key": "documentation_only"}],
        webhooks=WebhookSettings(secret_keys=("documentation-only",)),
    )
    return create_app(settings)  # the lifespan never runs: nothing is created on disk


def _scope_of(dependant: Any) -> str | None:
    """The scopes a route's ``require(*scopes)`` dependency asks for, if any."""
    for dep in dependant.dependencies:
        call = dep.call
        if getattr(call, "__qualname__", "").startswith("require.<locals>."):
            scopes = inspect.getclosurevars(call).nonlocals["scopes"]
            return " and ".join(_code(scope) for scope in scopes)
        found = _scope_of(dep)
        if found:
            return found
    return None


def _api_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route with a ``dependant``, through included routers (FastAPI >= 0.16x nests them)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)
        elif getattr(route, "dependant", None) is not None:
            yield route


def route_scopes(app: Any, openapi: Mapping[str, Any]) -> dict[tuple[str, str], str | None]:
    """``{(METHOD, path): scope or None}`` for every operation of ``openapi``.

    Raises if an operation's route cannot be found, rather than document a
    route as open when its scope is unknown.
    """
    scopes: dict[tuple[str, str], str | None] = {}
    for route in _api_routes(app.routes):
        for method in route.methods:
            scopes[(method.upper(), route.path_format)] = _scope_of(route.dependant)
    for path, operations in openapi["paths"].items():
        for method in operations:
            if (method.upper(), path) not in scopes:
                raise RuntimeError(f"cannot find the route of {method.upper()} {path}")
    return scopes


def _anchor(name: str) -> str:
    return f"http-schema-{name.lower()}"


def _link(name: str) -> str:
    return f"[`{name}`](#{_anchor(name)})"


def _schema_rows(schema: Mapping[str, Any]) -> list[list[str]]:
    required = set(schema.get("required", ()))
    return [
        [_code(name), json_type(prop, _link), "yes" if name in required else "no",
         prop.get("description", "")]
        for name, prop in schema.get("properties", {}).items()
    ]  # fmt: skip


def _response_text(response: Mapping[str, Any]) -> str:
    content = response.get("content") or {}
    if not content:
        return response.get("description", "")
    parts = []
    for media, body in content.items():
        schema = body.get("schema") or {}
        if schema.get("$ref") or schema.get("type") == "array":
            parts.append(f"{json_type(schema, _link)} ({media})")
        elif schema.get("type") == "object":
            parts.append(f"a JSON object ({media})")
        else:
            parts.append(media)
    return "; ".join(parts)


#: Descriptions of parameters the routes leave undescribed (they are the same everywhere).
PARAMETER_DESCRIPTIONS = {
    ("path", "path"): "The node's path from the root, segments joined by `/` (empty: the root).",
}


def openapi_markdown(openapi: Mapping[str, Any], scopes: Mapping[tuple[str, str], Any]) -> str:
    """The HTTP reference, grouped by tag, from an OpenAPI document."""
    groups: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, operations in openapi["paths"].items():
        for method, op in operations.items():
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append((method.upper(), path, op))
    titles = {"catalog": "Catalog (Tiled protocol)", "webhooks": "Webhooks",
              "operations": "Operations"}  # fmt: skip
    order = ["catalog", "webhooks", "operations"]
    out: list[str] = []

    summary_rows = []
    for tag in sorted(groups, key=lambda t: (order.index(t) if t in order else 99, t)):
        for method, path, op in groups[tag]:
            scope = scopes.get((method, path))
            summary_rows.append([f"`{method} {path}`", op.get("summary", ""), scope or "none"])
    out.append("## Every route\n")
    out.append(_table(["Route", "What it does", "Scope"], summary_rows))

    for tag in sorted(groups, key=lambda t: (order.index(t) if t in order else 99, t)):
        out.append(f"\n## {titles.get(tag, tag.title())}\n")
        for method, path, op in groups[tag]:
            out.append(f"\n### `{method} {path}`\n")
            out.append(f"{op.get('summary', '')}.\n")
            if op.get("description"):
                out.append(f"\n{op['description'].strip()}\n")
            scope = scopes.get((method, path))
            out.append(
                f"\n**Scope:** {scope} (or `admin`).\n"
                if scope
                else "\n**Scope:** none (no API key needed).\n"
            )
            params = op.get("parameters") or []
            if params:
                rows = [
                    [
                        _code(p["name"]),
                        p.get("in", ""),
                        json_type(p.get("schema", {}), _link),
                        _default(p.get("schema", {}), p.get("required", False)),
                        p.get("description")
                        or p.get("schema", {}).get("description")
                        or PARAMETER_DESCRIPTIONS.get((p["name"], p.get("in")), ""),
                    ]
                    for p in params
                ]
                out.append("\n**Parameters**\n\n")
                out.append(_table(["Name", "In", "Type", "Default", "Description"], rows))
            body = op.get("requestBody")
            if body:
                kinds = "; ".join(
                    f"{json_type(c.get('schema', {}), _link)} ({media})"
                    for media, c in body.get("content", {}).items()
                )
                out.append(f"\n**Request body:** {kinds}\n")
            rows = [
                [code, _response_text(resp)]
                for code, resp in op.get("responses", {}).items()
                if code != "422"
            ]
            if rows:
                out.append("\n**Responses**\n\n")
                out.append(_table(["Status", "Body"], rows))

    schemas = openapi.get("components", {}).get("schemas", {})
    hidden = {"HTTPValidationError", "ValidationError"}  # FastAPI's 422 body: see the intro
    shown = {n: s for n, s in schemas.items() if n not in hidden}
    if shown:
        out.append("\n## Request and response bodies\n")
        for name, schema in shown.items():
            out.append(f"\n({_anchor(name)})=\n### `{name}`\n")
            if schema.get("description"):
                out.append(f"\n{' '.join(schema['description'].split())}\n")
            out.append("\n")
            out.append(_table(["Field", "Type", "Always present", "Description"],
                              _schema_rows(schema)))  # fmt: skip
    return "".join(out)


def unsupported_markdown() -> str:
    from hookbook.protocol import UNSUPPORTED_ROUTES

    rows = [[f"`/api/v1/{route.prefix}/...`", route.feature] for route in UNSUPPORTED_ROUTES]
    return _table(["Tiled route", "What it is"], rows)


# --------------------------------------------------------------------------- configuration

#: Descriptions of settings whose pydantic field carries none. A field with no
#: description here or in the model fails the build, so a new key is documented.
EXTRA_DESCRIPTIONS = {
    ("Settings", "directory"): "Data files, and the default SQLite database "
    "(`hookbook.db`). In a config file: relative to the file; default: the file's folder.",
    ("Settings", "api_keys"): "At least one key; see the `api_keys` entries below.",
    ("Settings", "webhooks"): "The `webhooks:` section; absent, the webhook routes are "
    "not mounted (404). See the `webhooks` table below.",
    ("Settings", "limits"): "Caps on what one request may carry; see the `limits` table below.",
    ("Settings", "storage"): "How long unreferenced data is kept, and compaction; see the "
    "`storage` table below.",
    ("ApiKey", "key"): "The key: at least 8 word characters (letters, digits, `_`).",
    ("ApiKey", "scopes"): "`admin` (all), or any of `read:metadata`, `write:metadata`, "
    "`read:webhooks`, `write:webhooks`, `read:operations`.",
}


def _settings_rows(model: Any, prefix: str) -> list[list[str]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description") or EXTRA_DESCRIPTIONS.get((model.__name__, name))
        if not description:
            raise RuntimeError(
                f"{model.__module__}.{model.__name__}.{name} has no description: add "
                "Field(description=...) so the configuration reference documents it"
            )
        default = "required" if name in required else _code(prop.get("default", None))
        if (model.__name__, name) == ("Settings", "directory"):
            default = "the config file's folder"
        elif (model.__name__, name) in {("Settings", "webhooks")}:
            default = "absent"
        elif (model.__name__, name) in {("Settings", "limits"), ("Settings", "storage")}:
            default = "the defaults below"
        rows.append([f"`{prefix}{name}`", json_type(prop), default, description])
    return rows


def configuration_markdown() -> str:
    from hookbook.config import ApiKey, Limits, Settings, StorageSettings, WebhookSettings

    sections = [
        ("Top level", Settings, ""),
        ("`api_keys` entries", ApiKey, "api_keys[]."),
        ("`webhooks`", WebhookSettings, "webhooks."),
        ("`limits`", Limits, "limits."),
        ("`storage`", StorageSettings, "storage."),
    ]
    out = []
    for title, model, prefix in sections:
        out.append(f"\n### {title}\n\n")
        doc = inspect.getdoc(model) or ""
        first = doc.split("\n\n")[0].replace("\n", " ").replace("``", "`")
        if first:
            out.append(f"{first}\n\n")
        out.append(_table(["Key", "Type", "Default", "Description"], _settings_rows(model, prefix)))
    return "".join(out)


# --------------------------------------------------------------------------- events


def events_markdown() -> str:
    from hookbook import events

    models = [
        events.ContainerChildCreated,
        events.ContainerChildMetadataUpdated,
        events.StreamClosed,
        events.ContainerChildDeleted,
        events.Ping,
    ]
    out = []
    for model in models:
        schema = model.model_json_schema()
        type_name = schema["properties"]["type"].get("const") or schema["properties"]["type"].get(
            "default"
        )
        out.append(f"\n### `{type_name}`\n\n")
        out.append(
            f"{{py:class}}`~hookbook.events.{model.__name__}`: "
            f"{(inspect.getdoc(model) or '').splitlines()[0]}\n\n"
        )
        required = set(schema.get("required", ()))
        rows = [
            [_code(name), json_type(prop), "yes" if name in required or name == "type" else "no",
             prop.get("description", "")]
            for name, prop in schema["properties"].items()
        ]  # fmt: skip
        out.append(_table(["Field", "Type", "Always present", "Description"], rows))
    return "".join(out)


# --------------------------------------------------------------------------- Sphinx hooks


def generate(app: Sphinx) -> None:
    """``builder-inited``: copy the notebooks, write the generated pages, set up the kernel."""
    names = sync_notebooks()
    logger.info("[hookbook] tutorials from notebooks/: %s", ", ".join(names))

    kernel_dir = tempfile.TemporaryDirectory(prefix="hookbook-docs-kernel-")
    app._hookbook_kernel_dir = kernel_dir  # type: ignore[attr-defined]
    install_kernelspec(Path(kernel_dir.name))

    from hookbook import events

    fastapi_app = _build_app()
    openapi = fastapi_app.openapi()
    _write(GENERATED / "openapi.json", json.dumps(openapi, indent=2) + "\n")
    _write(GENERATED / "http-api.md", openapi_markdown(openapi, route_scopes(fastapi_app, openapi)))
    _write(GENERATED / "unsupported.md", unsupported_markdown())
    _write(GENERATED / "configuration.md", configuration_markdown())
    _write(GENERATED / "events.md", events_markdown())
    _write(GENERATED / "events.schema.json", json.dumps(events.json_schema(), indent=2) + "\n")


def always_execute_tutorials(
    app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    """``env-get-outdated``: re-read (so re-execute) every tutorial on every build."""
    return [d for d in env.found_docs if d.startswith("tutorials/") and d not in added | changed]


def pydantic_signature(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, signature: Any, return_ann: Any
) -> tuple[str, Any] | None:
    """``autodoc-process-signature``: no constructor signature for pydantic models.

    Their generated signatures repeat every field with pydantic's validation
    metadata; the configuration and events pages tabulate the fields instead.
    """
    from pydantic import BaseModel

    if what == "class" and isinstance(obj, type) and issubclass(obj, BaseModel):
        return "", return_ann
    return None


def check_executions(app: Sphinx, env: BuildEnvironment) -> None:
    """``env-updated``: a tutorial whose execution failed fails the build, with or without -W.

    myst-nb has already printed the failing cell's source and traceback (as a
    warning, since ``nb_execution_show_tb``); this names the source notebook.
    """
    from myst_nb.sphinx_ import NbMetadataCollector

    failed = []
    for docname in sorted(env.found_docs):
        if not docname.startswith("tutorials/"):
            continue
        data = NbMetadataCollector.get_exec_data(env, docname)
        if data is not None and not data.get("succeeded", True):
            failed.append(docname)
            logger.error(
                "[hookbook] notebook %s failed to execute (%s; the cell and its "
                "traceback are printed above)",
                f"notebooks/{docname.removeprefix('tutorials/')}.md",
                data.get("error"),
                location=docname,
            )
    app._hookbook_failed_notebooks = failed  # type: ignore[attr-defined]


def cleanup(app: Sphinx, exception: BaseException | None) -> None:
    """``build-finished``: remove the kernelspec; a failed notebook makes the exit status 1."""
    kernel_dir = getattr(app, "_hookbook_kernel_dir", None)
    if kernel_dir is not None:
        kernel_dir.cleanup()
    if getattr(app, "_hookbook_failed_notebooks", None):
        app.statuscode = 1


def napoleon_for_functions_and_classes(app: Sphinx) -> None:
    """Keep napoleon away from property and attribute docstrings.

    For those, napoleon reads a first line ``X: Y`` as "type X, description Y"
    (Google style), which turns prose such as "The X-Tiled-Event-ID header:
    the same on every retry" into a bogus type. hookbook annotates its
    properties, so their docstrings are prose; sections (Parameters, Returns)
    in functions and classes are still parsed.
    """
    from sphinx.ext.napoleon import _process_docstring

    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is _process_docstring:
            app.disconnect(listener.id)

            def process(
                app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
            ) -> None:
                if what not in {"property", "attribute", "data"}:
                    _process_docstring(app, what, name, obj, options, lines)

            app.connect("autodoc-process-docstring", process, priority=listener.priority)


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.napoleon")
    napoleon_for_functions_and_classes(app)
    app.connect("builder-inited", generate)
    app.connect("env-get-outdated", always_execute_tutorials)
    app.connect("env-updated", check_executions)
    app.connect("autodoc-process-signature", pydantic_signature)
    app.connect("build-finished", cleanup)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
