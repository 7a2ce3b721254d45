"""The response envelope: the about document, links, items and search pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from ..errors import ClientInputError
from ..paths import quote_path
from .constants import (
    APACHE_ARROW_FILE_MIME_TYPE,
    ARRAY_MIME_TYPE,
    JSON_MIME_TYPE,
    TILED_PROTOCOL_VERSION,
)
from .specs import Spec, normalise_specs
from .structures import (
    STRUCTURE_MODELS,
    ArrayStructure,
    ContainerStructure,
    DataSource,
    StructureFamily,
    TableStructure,
    parse_structure,
)


class AboutAuthentication(BaseModel):
    """The ``authentication`` section of the about document.

    ``required``: whether reading needs credentials. With ``true`` and no
    providers the tiled client insists on an API key before its first
    catalog request (a clear error instead of a 401).
    ``providers``: always ``[]``: hookbook has API keys only, and an empty
    list is what keeps the tiled client from ever starting a login
    (password or device-code) flow.
    ``links``: ``None``: there are no session/whoami routes. (The client
    then skips ``whoami`` in its ``repr`` and refuses
    ``context.create_api_key`` locally.)
    """

    model_config = ConfigDict(extra="forbid")

    required: bool
    providers: list[dict[str, Any]] = Field(default_factory=list, max_length=0)
    links: dict[str, str] | None = None


class About(BaseModel):
    """The about document, ``GET /api/v1/``, validated strictly at connect.

    The tiled client fetches it *before* it sets its API key header, so the
    route must answer without authentication. All eight keys are required.

    ``api_version``: the API version number (an int; Tiled sends ``0``).
    ``library_version``: the Tiled version whose protocol is spoken, a PEP
    440 version (see :data:`TILED_PROTOCOL_VERSION`).
    ``formats``: for each structure family, the media types its data can be
    read as. The client looks up ``formats[structure_family]`` (KeyError if
    a family of a served node is missing).
    ``aliases``: for each family, short names of media types
    (``{"text/csv": ["csv"]}``); hookbook has none.
    ``queries``: names of the search filters supported (``filter[...]``
    query parameters); hookbook supports none.
    ``authentication``: see :class:`AboutAuthentication`.
    ``links``: at least ``self``, the API root URL (the client's admin
    accessor reads ``links["self"]`` at connect).
    ``meta``: free-form; hookbook puts its own name and version here.
    """

    model_config = ConfigDict(extra="forbid")

    api_version: int
    library_version: str
    formats: dict[str, list[str]]
    aliases: dict[str, dict[str, list[str]]]
    queries: list[str]
    authentication: AboutAuthentication
    links: dict[str, str]
    meta: dict[str, Any]

    @field_validator("links")
    @classmethod
    def _self_link(cls, value: dict[str, str]) -> dict[str, str]:
        if "self" not in value:
            raise ClientInputError("links must include 'self'")
        return value


def about_document(
    base_url: str,
    version: str,
    *,
    api_key_required: bool = True,
    queries: Sequence[str] = (),
) -> dict[str, Any]:
    """The about document (``GET /api/v1/``) as a JSON-ready dict.

    ``base_url`` is the API root (``http://host:port/api/v1``); ``version``
    is hookbook's own version, reported in ``meta``. ``library_version`` is
    :data:`TILED_PROTOCOL_VERSION`, whatever hookbook's version: the client
    compares it with Tiled versions.
    """
    base_url = base_url.rstrip("/")
    doc = About(
        api_version=0,
        library_version=TILED_PROTOCOL_VERSION,
        formats={
            "array": [ARRAY_MIME_TYPE],
            "table": [APACHE_ARROW_FILE_MIME_TYPE],
            "container": [JSON_MIME_TYPE],
        },
        aliases={"array": {}, "table": {}, "container": {}},
        queries=list(queries),
        authentication=AboutAuthentication(required=api_key_required, providers=[]),
        links={"self": base_url},
        meta={"server": "hookbook", "hookbook_version": version},
    )
    return doc.model_dump(mode="json")


def links_for(
    family: StructureFamily | str,
    base_url: str,
    path_segments: Sequence[str],
    *,
    ndim: int | None = None,
) -> dict[str, str]:
    """The ``links`` of a node, as the tiled client follows them.

    Every family: ``self`` = ``{base}/metadata/{path}`` (for the root
    ``{base}/metadata/``, *with* the slash: the client derives
    ``/stream/close/...`` by replacing ``/metadata/``). Container:
    ``search`` (children listing) and ``full``; array: ``full`` (raw bytes,
    slicing, appends) and ``block``, a ``str.format`` template with one
    positional field per axis (``...?block={0},{1}``, so arrays need
    ``ndim``); table: ``full`` (upload) and ``partition``, a template with
    the named field ``index`` (``...?partition={index}``). Keys are
    percent-encoded.
    """
    family = StructureFamily(family)
    base_url = base_url.rstrip("/")
    path = quote_path(path_segments)
    links = {"self": f"{base_url}/metadata/{path}"}
    if family is StructureFamily.container:
        links["search"] = f"{base_url}/search/{path}"
        links["full"] = f"{base_url}/container/full/{path}"
    elif family is StructureFamily.array:
        if ndim is None or ndim < 0:
            raise ClientInputError("the links of an array need its number of axes (ndim=)")
        fields = ",".join(f"{{{axis}}}" for axis in range(ndim))
        links["full"] = f"{base_url}/array/full/{path}"
        links["block"] = f"{base_url}/array/block/{path}?block={fields}"
    else:
        links["full"] = f"{base_url}/table/full/{path}"
        links["partition"] = f"{base_url}/table/partition/{path}?partition={{index}}"
    return links


class NodeLinks(BaseModel):
    """The ``links`` of an item: absolute URLs the client requests verbatim.

    ``self``: the node's metadata URL (always). ``search``, ``full``:
    containers. ``full``, ``block``: arrays. ``full``, ``partition``:
    tables. See :func:`links_for`. Links that do not apply are left out of
    the JSON (no ``null`` values). Leaving out ``search_deep`` makes the
    client's ``search_deep()`` fail locally with "not supported".
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    self_: str = Field(alias="self")
    search: str | None = None
    full: str | None = None
    block: str | None = None
    partition: str | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        own = data.pop("self_", None) or data.pop("self", None)
        return {"self": own, **{k: v for k, v in data.items() if v is not None}}


class SortingItem(BaseModel):
    """One sort key of a container: ``key`` (``""`` = the default order,
    creation order in hookbook) and ``direction`` (1 ascending, -1 descending)."""

    key: str
    direction: Literal[1, -1]


class NodeAttributes(BaseModel):
    """The ``attributes`` of an item.

    ``ancestors``: keys from the root to the parent (``[]`` for children of
    the root and for the root itself). ``structure_family``: ``container``,
    ``array`` or ``table``. ``specs``: list of :class:`Spec` (always a list,
    never null: the client iterates it). ``metadata``: the user's JSON
    object (always an object). ``structure``: the family's structure;
    containers *must* carry ``{"contents": null, "count": n}``.
    ``access_tags``: ``[]``: hookbook has no access tags, but the client's
    ``metadata_copy()`` reads the key and makes a list of it.
    ``sorting``: ``None``: the client then uses the server's default order
    (it sends no ``sort`` parameter, and ``sort=-`` to walk backwards).
    ``data_sources``: only with ``include_data_sources=true``, else ``None``.
    """

    model_config = ConfigDict(extra="ignore")

    ancestors: list[str]
    structure_family: StructureFamily
    specs: list[Spec] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    structure: ArrayStructure | TableStructure | ContainerStructure | None = None
    access_tags: list[str] | None = Field(default_factory=list)
    sorting: list[SortingItem] | None = None
    data_sources: list[DataSource] | None = None

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec]:
        return normalise_specs(value)

    @model_validator(mode="before")
    @classmethod
    def _structure_by_family(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("structure"), Mapping):
            family = data.get("structure_family")
            family = getattr(family, "value", family)
            if family in STRUCTURE_MODELS:
                data = dict(data)
                data["structure"] = parse_structure(family, data["structure"])
        return data

    @model_validator(mode="after")
    def _family_matches(self) -> NodeAttributes:
        if self.structure is not None:
            expected = STRUCTURE_MODELS[self.structure_family.value]
            if not isinstance(self.structure, expected):
                raise ClientInputError(
                    f"a {self.structure_family.value} node needs a {expected.__name__}"
                )
        return self


class Item(BaseModel):
    """One node as the client sees it (a JSON:API-style resource).

    ``id``: the node's key (``""`` for the root). ``attributes``:
    :class:`NodeAttributes`. ``links``: :class:`NodeLinks`. ``meta``:
    free-form, ``{}``.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    attributes: NodeAttributes
    links: NodeLinks
    meta: dict[str, Any] = Field(default_factory=dict)


def item(
    path_segments: Sequence[str],
    *,
    structure_family: StructureFamily | str,
    structure: ArrayStructure | TableStructure | ContainerStructure | Mapping[str, Any],
    base_url: str,
    metadata: Mapping[str, Any] | None = None,
    specs: Any = None,
    data_sources: Sequence[DataSource | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A node's item envelope as a JSON-ready dict.

    ``path_segments`` is the node's full path (the root is ``[]``); ``id`` is
    its last segment and ``ancestors`` the rest. ``structure`` is validated
    against the family (a container passes ``ContainerStructure(count=n)``).
    ``data_sources`` is given only when the request asked for them.
    """
    family = StructureFamily(structure_family)
    segments = list(path_segments)
    parsed = parse_structure(family.value, structure)
    ndim = len(parsed.shape) if isinstance(parsed, ArrayStructure) else None
    links = links_for(family, base_url, segments, ndim=ndim)
    doc = Item(
        id=segments[-1] if segments else "",
        attributes=NodeAttributes(
            ancestors=segments[:-1],
            structure_family=family,
            specs=normalise_specs(specs),
            metadata=dict(metadata or {}),
            structure=parsed,
            data_sources=None
            if data_sources is None
            else [DataSource.model_validate(source) for source in data_sources],
        ),
        links=NodeLinks.model_validate(links),
    )
    return doc.model_dump(mode="json")


def metadata_response(item_document: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``GET /metadata/{path}``: ``{"data": item, "meta": {}}``.

    The client reads only ``data``.
    """
    return {"data": dict(item_document), "meta": {}}


class PaginationLinks(BaseModel):
    """Paging links of a search response, absolute URLs carrying only
    ``page[offset]`` and ``page[limit]``.

    ``self``: this page. ``first``: offset 0. ``last``: the last page
    (offset 0 when there are no children). ``next``: the following page, or
    ``None`` on the last page: the client follows ``next`` until it is
    ``None`` (re-adding its own ``fields``/``sort`` parameters), so it must
    be ``None`` when ``offset + limit >= count`` and when ``limit == 0``.
    ``prev``: the previous page, or ``None`` on the first.
    """

    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    first: str
    last: str
    next: str | None
    prev: str | None

    @model_serializer(mode="wrap")
    def _alias_self(self, handler: Any) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "self_" in data:
            data["self"] = data.pop("self_")
        return data


class SearchMeta(BaseModel):
    """``meta`` of a search response: ``count``, the number of children
    (all of them, not just this page). ``len(container)`` reads it."""

    count: int = Field(ge=0)


class SearchResponse(BaseModel):
    """The body of ``GET /search/{path}``: ``data`` (the page's items, in
    order), ``links`` (:class:`PaginationLinks`), ``meta`` (:class:`SearchMeta`).
    With ``fields=count`` ``data`` is ``[]``; with ``fields=`` (empty) an item
    may carry only ``id``, ``attributes.ancestors`` and ``links.self``."""

    data: list[dict[str, Any]]
    links: PaginationLinks
    meta: SearchMeta


def pagination_links(
    base_url: str, path_segments: Sequence[str], *, offset: int, limit: int, count: int
) -> dict[str, str | None]:
    """The ``links`` of a search page (see :class:`PaginationLinks`)."""
    if offset < 0 or limit < 0 or count < 0:
        raise ClientInputError("offset, limit and count must not be negative")
    route = f"{base_url.rstrip('/')}/search/{quote_path(path_segments)}"

    def page(start: int) -> str:
        return f"{route}?page[offset]={start}&page[limit]={limit}"

    last = ((count - 1) // limit) * limit if (count and limit) else 0
    has_next = limit > 0 and offset + limit < count
    links = {
        "self": page(offset),
        "first": page(0),
        "last": page(last),
        "next": page(offset + limit) if has_next else None,
        "prev": page(max(0, offset - limit)) if offset > 0 else None,
    }
    return PaginationLinks.model_validate(links).model_dump(mode="json")


def search_response(
    items: Sequence[Mapping[str, Any]],
    *,
    base_url: str,
    path_segments: Sequence[str],
    offset: int,
    limit: int,
    count: int,
) -> dict[str, Any]:
    """The body of ``GET /search/{path}`` for one page.

    ``items`` are the page's item documents (see :func:`item`); ``limit`` is
    the page size actually used (clamp the request to
    :data:`MAX_PAGE_LIMIT` first); ``count`` is the total number of children.
    """
    return SearchResponse(
        data=[dict(i) for i in items],
        links=PaginationLinks.model_validate(
            pagination_links(base_url, path_segments, offset=offset, limit=limit, count=count)
        ),
        meta=SearchMeta(count=count),
    ).model_dump(mode="json")
