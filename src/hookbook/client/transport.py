"""The client's one HTTP seam: a synchronous httpx client that raises hookbook errors.

Synchronous on purpose: it works in a Jupyter cell, where an event loop is
already running. Error responses become the exception classes of
:mod:`hookbook.errors` (the server names the class in its JSON body); a body
is parsed as JSON only when it says it is JSON.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from .._version import __version__
from ..errors import error_from_response


def split_uri(uri: str, api_key: str | None) -> tuple[str, str | None]:
    """``http://host:port/api/v1?api_key=K`` -> (``http://host:port/api/v1``, ``K``)."""
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    key = api_key or (query["api_key"][0] if "api_key" in query else None)
    path = parts.path.rstrip("/")
    if not path.endswith("/api/v1"):
        path = path + "/api/v1" if "/api/v1" not in path else path[: path.index("/api/v1") + 7]
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), key


def _decode(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            return response.json()
        except ValueError:
            return None
    return None


class Transport:
    """Requests against one server's ``/api/v1``, with the API key attached."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": f"hookbook-client/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Apikey {api_key}"
        self.http = httpx.Client(headers=headers, timeout=timeout, trust_env=False)

    def url(self, route: str) -> str:
        return f"{self.base_url}/{route.lstrip('/')}"

    def request(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        """Send a request; raise the matching :mod:`hookbook.errors` class on 4xx/5xx."""
        target = route if route.startswith("http") else self.url(route)
        response = self.http.request(method, target, **kwargs)
        if response.is_error:
            raise error_from_response(response.status_code, _decode(response))
        return response

    def json(self, method: str, route: str, **kwargs: Any) -> Any:
        return self.request(method, route, **kwargs).json()

    def close(self) -> None:
        self.http.close()
