"""hookbook's Python client: ``from_uri(uri)`` returns the root container.

Synchronous (it works in a Jupyter cell), closable (``close()`` or a ``with``
block), and it raises the exception classes of :mod:`hookbook.errors` with
the server's message.
"""

from __future__ import annotations

import warnings
from typing import Any

from .nodes import ArrayNode, Container, Node, TableNode
from .transport import Transport, split_uri
from .webhooks import Attempt, DeliveryRecord, Webhook, Webhooks

__all__ = [
    "ArrayNode",
    "Attempt",
    "Container",
    "DeliveryRecord",
    "Node",
    "TableNode",
    "Webhook",
    "Webhooks",
    "from_uri",
]


def from_uri(uri: str, *, api_key: str | None = None, timeout: float = 30.0) -> Container:
    """Connect to a hookbook (or Tiled-protocol) server and return its root container.

    ``uri`` is the API root, e.g. ``SimpleServer.uri``
    (``http://127.0.0.1:PORT/api/v1?api_key=KEY``); an ``api_key`` argument
    overrides the one in the URI.
    """
    base, key = split_uri(uri, api_key)
    transport = Transport(base, key, timeout=timeout)
    try:
        item = transport.json("GET", "metadata/")["data"]
    except BaseException:
        transport.close()
        raise
    return Container(transport, [], item)


def __getattr__(name: str) -> Any:
    # The history record's old name; it warns only when used, so that listing the
    # module (``dir``, ``from hookbook.client import *``, autodoc) stays quiet.
    if name == "Delivery":
        warnings.warn(
            "hookbook.client.Delivery is now hookbook.client.DeliveryRecord "
            "(hookbook.testing.Delivery is the receiver's object)",
            DeprecationWarning,
            stacklevel=2,
        )
        return DeliveryRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
