"""Specs: the named specifications a node claims to follow."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ClientInputError, validation_message
from .constants import MAX_SPECS


class Spec(BaseModel):
    """A named specification a node claims to follow.

    ``name``: the spec's name (1 to 255 characters). The tiled client picks
    its Python class by spec name before structure family, so a spec named
    like a client class (``xarray_dataset``, ``composite``, ``array``,
    ``table``, ...) changes which class the tiled client builds.
    ``version``: an optional version string (at most 255 characters), or
    ``None``.

    On the wire a spec is always the object ``{"name": ..., "version": ...}``;
    :func:`normalise_specs` also accepts a bare string, meaning a name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    version: str | None = Field(default=None, max_length=255)


def _one_spec(value: Any) -> Spec:
    if isinstance(value, Spec):
        return value
    if isinstance(value, str):
        name, version = value, None
    elif isinstance(value, Mapping):
        unknown = set(value) - {"name", "version"}
        if unknown:
            raise ClientInputError(
                f"a spec has only 'name' and 'version', not {sorted(map(str, unknown))}"
            )
        if "name" not in value:
            raise ClientInputError(f"a spec needs a 'name': {dict(value)!r}")
        name, version = value["name"], value.get("version")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        # For example tiled.structures.core.Spec, handed over by a user.
        fields = dataclasses.asdict(value)
        if set(fields) != {"name", "version"}:
            raise ClientInputError(f"cannot interpret {value!r} as a spec")
        name, version = fields["name"], fields["version"]
    else:
        raise ClientInputError(
            f"a spec must be a name (str), a {{'name', 'version'}} mapping or a Spec, "
            f"not {type(value).__name__}: {value!r}"
        )
    if not isinstance(name, str):
        raise ClientInputError(f"a spec name must be a string, not {type(name).__name__}")
    if version is not None and not isinstance(version, str):
        raise ClientInputError(
            f"a spec version must be a string or null, not {type(version).__name__}"
        )
    try:
        return Spec(name=name, version=version)
    except ValidationError as err:
        raise ClientInputError(f"invalid spec {name!r}: {validation_message(err)}") from None


def normalise_specs(value: Any) -> list[Spec]:
    """Turn what a user or a request gives as specs into a list of :class:`Spec`.

    Accepts ``None`` (no specs), one spec, or a list/tuple of specs, where a
    spec is a bare string (a name, no version), a mapping with ``name`` and
    optional ``version``, a :class:`Spec`, or a dataclass with exactly the
    fields ``name`` and ``version`` (such as ``tiled.structures.core.Spec``).
    Raises :class:`~hookbook.errors.ClientInputError` for anything else, for duplicates, and for
    more than :data:`MAX_SPECS` specs.
    """
    if value is None:
        return []
    if isinstance(value, (str, Spec, Mapping)) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        values: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        raise ClientInputError(
            f"specs must be a list of names, {{'name', 'version'}} mappings or Specs, "
            f"not {type(value).__name__}: {value!r}"
        )
    specs = [_one_spec(v) for v in values]
    seen: set[Spec] = set()
    for spec in specs:
        if spec in seen:
            raise ClientInputError(f"duplicate spec {spec.name!r} (version {spec.version!r})")
        seen.add(spec)
    if len(specs) > MAX_SPECS:
        raise ClientInputError(f"at most {MAX_SPECS} specs are allowed, not {len(specs)}")
    return specs
