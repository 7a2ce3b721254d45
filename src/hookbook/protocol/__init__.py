"""Wire models of the Tiled catalog protocol, as spoken by hookbook.

hookbook's catalog HTTP API follows the protocol of Tiled's ``/api/v1`` so
that the real ``tiled`` Python client (0.2.20 and later 0.2.x) works against
it unchanged, and hookbook's own client uses the same routes. This package
holds every document that crosses the wire for the supported operations,
one module per job:

* :mod:`~hookbook.protocol.constants`: versions, media types, page limits;
* :mod:`~hookbook.protocol.specs`: :class:`Spec` and :func:`normalise_specs`;
* :mod:`~hookbook.protocol.structures`: the structures (:class:`DataType`,
  :class:`ArrayStructure`, :class:`TableStructure`,
  :class:`ContainerStructure`) and :class:`DataSource`;
* :mod:`~hookbook.protocol.envelope`: the about document
  (:func:`about_document`), the item envelope of ``GET /metadata/{path}``
  and ``GET /search/{path}`` (:class:`Item`, :func:`item`,
  :func:`links_for`, :func:`search_response`);
* :mod:`~hookbook.protocol.bodies`: the request bodies of the write routes
  (:class:`CreateNodeRequest`, :class:`MetadataPatchRequest`,
  :class:`MetadataReplaceRequest`) and the responses the client reads back;
* :mod:`~hookbook.protocol.queries`: query parameters (:func:`parse_sort`,
  :func:`parse_fields`, :class:`ArrayPatchParams`, :class:`DeleteParams`);
* :mod:`~hookbook.protocol.slicing`: :func:`parse_slice`,
  :func:`parse_expected_shape`, :func:`format_slice`;
* :mod:`~hookbook.protocol.unsupported`: the Tiled routes hookbook does not
  serve (:data:`UNSUPPORTED_ROUTES`, answered with 400).

This package re-exports all of them. ``docs/tiled-protocol.md`` describes,
request by request, what the client sends and reads. Everything here is
hookbook's own code: it imports nothing from Tiled, nor from the server's
dependencies (the client imports it). ``numpy`` and ``pyarrow`` are
imported only inside the functions that need them.

Conventions
-----------
* ``base_url`` is the absolute URL of the API root *without* a trailing
  slash, as the client must be able to reach it, e.g.
  ``http://127.0.0.1:8000/api/v1``. Every link handed to the client is
  absolute: the client requests links verbatim.
* ``path_segments`` is the list of keys from the root to a node, e.g.
  ``["run1", "det"]``; the root is ``[]``.
* Parsers raise :class:`~hookbook.errors.ClientInputError` (or a subclass
  that names the status: 409, 422) with a message meant for the HTTP
  ``detail``; it is also a :class:`ValueError`, so inside a model's
  validator pydantic reports it as a validation error. They never raise
  anything the server would turn into a 500.
"""

from __future__ import annotations

from .bodies import (
    CreateNodeRequest,
    CreateNodeResponse,
    MetadataPatchRequest,
    MetadataReplaceRequest,
    MetadataUpdateResponse,
    parse_body,
)
from .constants import (
    APACHE_ARROW_FILE_MIME_TYPE,
    ARRAY_MIME_TYPE,
    ARROW_SCHEMA_PREFIX,
    DEFAULT_PAGE_LIMIT,
    JSON_MIME_TYPE,
    JSON_PATCH_MIME_TYPE,
    MAX_PAGE_LIMIT,
    MAX_SPECS,
    MERGE_PATCH_MIME_TYPE,
    SHAPE_HEADER,
    TILED_API_KEY_PATTERN,
    TILED_PROTOCOL_VERSION,
)
from .envelope import (
    About,
    AboutAuthentication,
    Item,
    NodeAttributes,
    NodeLinks,
    PaginationLinks,
    SearchMeta,
    SearchResponse,
    SortingItem,
    about_document,
    item,
    links_for,
    metadata_response,
    pagination_links,
    search_response,
)
from .queries import (
    ENTRY_FIELDS,
    ArrayPatchParams,
    ArrayPatchPlan,
    DeleteParams,
    parse_fields,
    parse_sort,
)
from .slicing import (
    format_slice,
    parse_expected_shape,
    parse_int_tuple,
    parse_slice,
    sliced_shape,
)
from .specs import Spec, normalise_specs
from .structures import (
    SUPPORTED_FAMILIES,
    ArrayStructure,
    ContainerStructure,
    DataSource,
    DataType,
    StructureFamily,
    TableStructure,
    parse_structure,
)
from .unsupported import UNSUPPORTED_ROUTES, UnsupportedRoute, find_unsupported

__all__ = [
    "APACHE_ARROW_FILE_MIME_TYPE",
    "ARRAY_MIME_TYPE",
    "ARROW_SCHEMA_PREFIX",
    "DEFAULT_PAGE_LIMIT",
    "ENTRY_FIELDS",
    "JSON_MIME_TYPE",
    "JSON_PATCH_MIME_TYPE",
    "MAX_PAGE_LIMIT",
    "MAX_SPECS",
    "MERGE_PATCH_MIME_TYPE",
    "SHAPE_HEADER",
    "SUPPORTED_FAMILIES",
    "TILED_API_KEY_PATTERN",
    "TILED_PROTOCOL_VERSION",
    "UNSUPPORTED_ROUTES",
    "About",
    "AboutAuthentication",
    "ArrayPatchParams",
    "ArrayPatchPlan",
    "ArrayStructure",
    "ContainerStructure",
    "CreateNodeRequest",
    "CreateNodeResponse",
    "DataSource",
    "DataType",
    "DeleteParams",
    "Item",
    "MetadataPatchRequest",
    "MetadataReplaceRequest",
    "MetadataUpdateResponse",
    "NodeAttributes",
    "NodeLinks",
    "PaginationLinks",
    "SearchMeta",
    "SearchResponse",
    "SortingItem",
    "Spec",
    "StructureFamily",
    "TableStructure",
    "UnsupportedRoute",
    "about_document",
    "find_unsupported",
    "format_slice",
    "item",
    "links_for",
    "metadata_response",
    "normalise_specs",
    "pagination_links",
    "parse_body",
    "parse_expected_shape",
    "parse_fields",
    "parse_int_tuple",
    "parse_slice",
    "parse_sort",
    "parse_structure",
    "search_response",
    "sliced_shape",
]
