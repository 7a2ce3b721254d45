"""Constants of the Tiled protocol as hookbook speaks it: versions, media types, limits."""

from __future__ import annotations

import re

#: The Tiled library version hookbook reports as ``library_version`` in the
#: about document. The tiled client compares it with ``0.2.4``: below that it
#: drops ``properties`` from the data sources of its create requests. It must
#: be a PEP 440 version, or the client fails (``InvalidVersion``) on create.
TILED_PROTOCOL_VERSION = "0.2.20"

JSON_MIME_TYPE = "application/json"
ARRAY_MIME_TYPE = "application/octet-stream"
APACHE_ARROW_FILE_MIME_TYPE = "application/vnd.apache.arrow.file"
JSON_PATCH_MIME_TYPE = "application/json-patch+json"
MERGE_PATCH_MIME_TYPE = "application/merge-patch+json"

#: A hookbook extension: the response header of an array read that names the
#: shape of the bytes sent (``"3,4"``; ``""`` for 0-d), so a client needs no
#: second request to learn it. Tiled's client ignores it.
SHAPE_HEADER = "X-Hookbook-Shape"

#: Prefix of the ``arrow_schema`` data URI in a table structure.
ARROW_SCHEMA_PREFIX = f"data:{APACHE_ARROW_FILE_MIME_TYPE};base64,"

#: Page size of ``GET /search`` when the client gives no ``page[limit]``
#: (Tiled's default), and the largest page hookbook serves (larger requests
#: are clamped, and the ``next`` link carries on from there).
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 300

#: At most this many specs per node (as in Tiled).
MAX_SPECS = 20

#: The tiled client recognises an API key only if it matches this pattern
#: (``tiled/client/context.py``: ``API_KEY_AUTH_HEADER_PATTERN``). A key with
#: other characters (``-``, ``.``, ...) is still sent, but the client then
#: believes it is unauthenticated and, when the about document says
#: ``required: true``, refuses to connect. Generate keys with
#: ``secrets.token_hex``.
TILED_API_KEY_PATTERN = re.compile(r"^\w+$")
