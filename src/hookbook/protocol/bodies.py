"""Request bodies of the write routes, and the responses the client reads back."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ..errors import ClientInputError, ConflictError, InvalidRequestError, validation_message
from ..patching import PatchBudget, apply_json_patch
from .constants import JSON_PATCH_MIME_TYPE
from .envelope import NodeLinks
from .specs import Spec, normalise_specs
from .structures import (
    SUPPORTED_FAMILIES,
    ArrayStructure,
    ContainerStructure,
    DataSource,
    StructureFamily,
    TableStructure,
    parse_structure,
    unsupported_family_message,
)

Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body], data: Any) -> Body:
    """Validate a request body as ``model``: the server parses what it receives
    with it, the client what it sends.

    Raises :class:`~hookbook.errors.InvalidRequestError` (422, as Tiled) with
    one line naming each problem.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(validation_message(exc, root="body")) from None


class CreateNodeRequest(BaseModel):
    """Body of ``POST /api/v1/metadata/{parent path}``: create a child.

    ``id``: the new key, required (the tiled client always sends one, a
    ``uuid4`` when the user gave none). The store checks it, once, against
    its own limits.
    ``ancestors``: the client's idea of the parent's path; unreliable (it
    is ``[""]`` under the root) and ignored: the URL is authoritative.
    ``metadata``: a JSON object. ``structure_family``: ``container``,
    ``array`` or ``table``. ``specs``: list of specs (normalised; a bare
    string is a name). ``access_tags``: accepted and ignored (hookbook has
    no access tags). ``data_sources``: ``[]`` for a container; exactly one
    :class:`DataSource` of the same family, carrying the structure, for an
    array or a table. After validation :meth:`structure` gives the parsed
    structure.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    ancestors: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    structure_family: StructureFamily
    specs: list[Spec] = Field(default_factory=list)
    access_tags: list[str] | None = None
    data_sources: list[DataSource] = Field(default_factory=list)

    _structure: ArrayStructure | TableStructure | ContainerStructure | None = PrivateAttr(
        default=None
    )

    @field_validator("structure_family", mode="before")
    @classmethod
    def _family(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in SUPPORTED_FAMILIES:
            raise ClientInputError(unsupported_family_message(value))
        return value

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec]:
        return normalise_specs(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ClientInputError(f"metadata must be a JSON object, not {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _data_sources(self) -> CreateNodeRequest:
        family = self.structure_family
        if family is StructureFamily.container:
            if self.data_sources:
                raise ClientInputError("a container is created without data_sources")
            return self
        if len(self.data_sources) != 1:
            raise ClientInputError(
                f"a {family.value} is created with exactly one data source, "
                f"not {len(self.data_sources)}"
            )
        (source,) = self.data_sources
        if source.structure_family != family.value:
            raise ClientInputError(
                f"the data source is a {source.structure_family!r}, the node a {family.value!r}"
            )
        if source.assets:
            raise ClientInputError(
                "registering external assets is not supported by hookbook "
                "(data is written through the API)"
            )
        if source.management != "writable":
            raise ClientInputError(
                f"data source management {source.management!r} is not supported (only 'writable')"
            )
        if source.structure is None:
            raise ClientInputError(f"the data source of a {family.value} needs a structure")
        self._structure = parse_structure(family.value, source.structure)
        return self

    def structure(self) -> ArrayStructure | TableStructure | ContainerStructure | None:
        """The new node's structure (``None`` for a container)."""
        return self._structure


class CreateNodeResponse(BaseModel):
    """Body answering ``POST /metadata/{path}``.

    ``id``: the new key. ``links``: the new node's full link set (the client
    builds its node object from it and at once uses ``full`` to upload
    data). ``metadata``: the stored metadata (the client adopts it).
    ``access_tags``: ``[]``. ``data_sources``: optional.

    Never add a ``structure`` key: the 0.2.20 client passes it positionally
    to its structure class and produces a broken node.
    """

    id: str
    links: NodeLinks
    metadata: dict[str, Any]
    access_tags: list[str] = Field(default_factory=list)
    data_sources: list[DataSource] | None = None

    @model_serializer(mode="wrap")
    def _drop_empty(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("data_sources") is None:
            data.pop("data_sources", None)
        return data


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _apply_json_patch(document: Any, operations: list[Any], what: str, budget: PatchBudget) -> Any:
    try:
        return apply_json_patch(document, operations, budget)
    except ConflictError as err:
        raise ConflictError(f"{what}: {err.detail}") from None


class MetadataPatchRequest(BaseModel):
    """Body of ``PATCH /api/v1/metadata/{path}`` (``update_metadata``).

    The HTTP ``Content-Type`` is plain ``application/json``; the patch
    format travels *inside* the body:

    ``content-type``: ``application/json-patch+json`` (RFC 6902, what the
    client's ``update_metadata`` sends) or ``application/merge-patch+json``
    (RFC 7386, only through ``patch_metadata(content_type=...)``).
    ``metadata``: JSON Patch operations (``[]`` for no change; the client
    always sends a list) or, for merge-patch, an object; computed by the
    client against *its cached copy* of the metadata.
    ``specs``: ``None`` for no change; JSON Patch operations over the list of
    spec objects (values ``{"name", "version"}``), or for merge-patch the
    complete new list.
    ``access_tags``: ignored (hookbook has no access tags).

    :meth:`apply` computes the new metadata and specs.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    content_type: Literal["application/json-patch+json", "application/merge-patch+json"] = Field(
        alias="content-type"
    )
    metadata: list[dict[str, Any]] | dict[str, Any] | None = None
    specs: list[Any] | None = None
    access_tags: list[Any] | None = None

    @model_validator(mode="after")
    def _shapes(self) -> MetadataPatchRequest:
        if self.content_type == JSON_PATCH_MIME_TYPE:
            if isinstance(self.metadata, dict):
                raise ClientInputError("a JSON Patch of metadata is a list of operations")
            for op in (self.metadata or []) + [
                s for s in (self.specs or []) if isinstance(s, dict)
            ]:
                if not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
                    raise ClientInputError(f"a JSON Patch operation needs 'op' and 'path': {op!r}")
            if any(not isinstance(s, dict) for s in self.specs or []):
                raise ClientInputError("a JSON Patch of specs is a list of operations")
        else:
            if isinstance(self.metadata, list):
                raise ClientInputError("a merge patch of metadata is a JSON object")
            if self.specs is not None:
                normalise_specs(self.specs)
        return self

    def apply(
        self, metadata: Mapping[str, Any], specs: Sequence[Spec], *, budget: PatchBudget
    ) -> tuple[dict[str, Any], list[Spec]]:
        """Apply this patch to the current metadata and specs.

        Returns ``(new_metadata, new_specs)``. Raises
        :class:`~hookbook.errors.ConflictError` (409) when the patch does not
        apply (e.g. it removes a key that is no longer there: the client
        computed it against a stale copy) or its result is not a JSON object,
        and :class:`~hookbook.errors.ClientInputError` when the resulting
        specs are not valid. A
        JSON Patch runs within ``budget`` (:mod:`hookbook.patching`: a 413
        at the first operation that takes the document over the limit).
        """
        current_specs = [s.model_dump() for s in specs]
        if self.content_type == JSON_PATCH_MIME_TYPE:
            new_metadata = _apply_json_patch(
                dict(metadata), list(self.metadata or []), "metadata", budget
            )
            if self.specs is None:
                new_specs = specs
            else:
                operations = []
                for op in self.specs:
                    op = dict(op)
                    if isinstance(op.get("value"), str):
                        op["value"] = {"name": op["value"], "version": None}
                    operations.append(op)
                new_specs = _apply_json_patch(current_specs, operations, "specs", budget)
        else:
            new_metadata = _merge_patch(dict(metadata), self.metadata or {})
            new_specs = specs if self.specs is None else self.specs
        if not isinstance(new_metadata, dict):
            raise ConflictError("the patched metadata is not a JSON object")
        return new_metadata, normalise_specs(list(new_specs))


class MetadataReplaceRequest(BaseModel):
    """Body of ``PUT /api/v1/metadata/{path}`` (the client's
    ``replace_metadata``, also usable by hookbook's own client).

    ``metadata``: the new metadata object, or ``None`` to keep it.
    ``specs``: the new list of specs, or ``None`` to keep them.
    ``access_tags``: ignored.
    """

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    specs: list[Spec] | None = None
    access_tags: list[str] | None = None

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec] | None:
        return None if value is None else normalise_specs(value)

    def apply(
        self, metadata: Mapping[str, Any], specs: Sequence[Spec]
    ) -> tuple[dict[str, Any], list[Spec]]:
        """``(new_metadata, new_specs)``: the given ones, or the current ones."""
        return (
            dict(metadata) if self.metadata is None else dict(self.metadata),
            list(specs) if self.specs is None else list(self.specs),
        )


class MetadataUpdateResponse(BaseModel):
    """Body answering ``PATCH``/``PUT /metadata/{path}``.

    ``id``: the node's key. ``metadata``: the stored metadata, which the
    client adopts as its new cached copy (never send ``null``: the client
    would store it). ``specs``: the stored specs (extra; the client patches
    its own copy).
    """

    id: str
    metadata: dict[str, Any]
    specs: list[Spec]
