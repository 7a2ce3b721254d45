"""hookbook: a Jupyter-first teaching and testing toolkit for catalog webhooks.

Importing ``hookbook`` is cheap: the server, client and receiver are imported
only when first used (``hookbook.server.SimpleServer``, ``hookbook.client.from_uri``,
``hookbook.testing.WebhookReceiver``).
"""

from ._version import __version__

__all__ = ["__version__"]
