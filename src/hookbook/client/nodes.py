"""Catalog nodes as the client sees them: containers, arrays and tables.

Every method is one or two requests on Tiled's routes (the same ones the
``tiled`` client uses). Writing an array or a table is two requests: the
node is declared with its structure, then its data is uploaded; the server
announces the node (``container-child-created``) only once the data is in.
"""

from __future__ import annotations

import html
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import protocol
from ..errors import HookbookError
from ..paths import quote_path, split_path
from .transport import Transport

if TYPE_CHECKING:  # numpy is imported on the first array read or write
    import numpy as np


SHAPE_HEADER = protocol.SHAPE_HEADER


def _route(prefix: str, path: Sequence[str]) -> str:
    return f"{prefix}/{quote_path(path)}"


def _segments(key: str | Sequence[str]) -> list[str]:
    if isinstance(key, str):
        # A key with no segment at all ("", "/") is sent as it is, for the server to refuse.
        return list(split_path(key)) or [key]
    return list(key)


class Node:
    """Any catalog entry: its path, metadata and specs."""

    def __init__(self, transport: Transport, path: Sequence[str], item: Mapping[str, Any]) -> None:
        self._transport = transport
        self.path: list[str] = list(path)
        self._item = dict(item)

    @property
    def key(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def structure_family(self) -> str:
        return cast(str, self._item["attributes"]["structure_family"])

    @property
    def metadata(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._item["attributes"]["metadata"])

    @property
    def specs(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._item["attributes"]["specs"])

    @property
    def structure(self) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, self._item["attributes"]["structure"])

    def refresh(self) -> Node:
        """Fetch this node's item again (metadata, specs, structure)."""
        self._item = self._transport.json("GET", _route("metadata", self.path))["data"]
        return self

    def update_metadata(self, metadata: Mapping[str, Any] | None = None, specs: Any = None) -> None:
        """Replace the metadata and/or the specs (whichever is given)."""
        body = protocol.parse_body(
            protocol.MetadataReplaceRequest, {"metadata": metadata, "specs": specs}
        )
        self._transport.json(
            "PUT",
            _route("metadata", self.path),
            json=body.model_dump(mode="json", exclude_none=True),
        )
        self.refresh()

    def delete(self) -> None:
        """Delete this node (a container with everything below it)."""
        params = protocol.DeleteParams(recursive=True)
        self._transport.request("DELETE", _route("metadata", self.path), params=params.model_dump())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'/'.join(self.path) or '/'!r}>"

    def _repr_html_(self) -> str:
        rows = {
            "path": "/".join(self.path) or "/",
            "family": self.structure_family,
            "specs": ", ".join(s["name"] for s in self.specs) or "-",
            "metadata": repr(self.metadata),
        }
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table>{body}</table>"


class _Stream(Node):
    """Arrays and tables are live streams until closed."""

    def close_stream(self) -> None:
        """Close the stream: no more appends; records ``stream-closed``."""
        self._transport.request("DELETE", _route("stream/close", self.path))


class ArrayNode(_Stream):
    """An n-dimensional array."""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.structure["shape"])  # type: ignore[index]  # an array has one

    @property
    def dtype(self) -> np.dtype[Any]:
        return protocol.DataType.model_validate(self.structure["data_type"]).to_numpy()  # type: ignore[index]  # an array has one

    def read(self, slice: Any = ...) -> np.ndarray:
        """The data (or a slice of it), read from the server (one request: the
        server names the shape of what it sends in a response header)."""
        params = {} if slice is ... else {"slice": protocol.format_slice(slice)}
        response = self._transport.request(
            "GET",
            _route("array/full", self.path),
            params=params,
            headers={"Accept": protocol.ARRAY_MIME_TYPE},
        )
        header = response.headers.get(SHAPE_HEADER)
        if header is None:  # not a hookbook server: ask for the shape
            self.refresh()
            key = protocol.parse_slice(params.get("slice"), self.shape)
            shape = protocol.sliced_shape(key, self.shape)
        else:
            shape = tuple(int(n) for n in header.split(",") if n)
        import numpy as np

        return np.frombuffer(response.content, dtype=self.dtype).reshape(shape).copy()

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.read(key)

    def append(self, data: Any) -> None:
        """Extend the array along its first axis.

        ``data`` holds rows of the array's row shape (``shape[1:]``): an array
        of the same number of axes, or a single row (one axis fewer)."""
        self.refresh()
        if not self.shape:
            raise ValueError(f"{'/'.join(self.path)!r} is 0-d: it has no axis to append along")
        import numpy as np

        array = np.ascontiguousarray(np.asarray(data, dtype=self.dtype))
        if array.ndim == len(self.shape) - 1:
            array = array.reshape((1, *array.shape))  # a single row
        if array.ndim != len(self.shape) or array.shape[1:] != self.shape[1:]:
            raise ValueError(
                f"cannot append data of shape {array.shape} to {'/'.join(self.path)!r}: "
                f"rows must have shape {self.shape[1:]} (the array is {self.shape})"
            )
        response = self._transport.json(
            "PATCH",
            _route("array/full", self.path),
            content=array.tobytes(),
            params={
                # append=true: the server appends at the length it has then, so
                # appends from several clients at once all land.
                "append": "true",
                "shape": ",".join(map(str, array.shape)),
                "extend": "true",
            },
            headers={"Content-Type": protocol.ARRAY_MIME_TYPE},
        )
        self._item["attributes"]["structure"] = response

    def __repr__(self) -> str:
        return f"<ArrayNode {'/'.join(self.path)!r} shape={self.shape} dtype={self.dtype}>"


def _arrow_table(data: Any) -> Any:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    return pa.Table.from_pandas(data, preserve_index=False)


def _ipc_file(table: Any) -> bytes:
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


class TableNode(_Stream):
    """A table (columns of equal length)."""

    @property
    def columns(self) -> list[str]:
        return list(self.structure["columns"])  # type: ignore[index]  # a table has one

    def read_arrow(self, columns: Sequence[str] | None = None) -> Any:
        import pyarrow as pa

        raw = self._transport.request(
            "GET",
            _route("table/full", self.path),
            params={"column": list(columns)} if columns else None,
            headers={"Accept": protocol.APACHE_ARROW_FILE_MIME_TYPE},
        ).content
        return pa.ipc.open_file(pa.BufferReader(raw)).read_all()

    def read(self, columns: Sequence[str] | None = None) -> Any:
        """The table as a pandas DataFrame."""
        return self.read_arrow(columns).to_pandas()

    def append(self, rows: Any, *, partition: int = 0) -> None:
        """Add rows (a DataFrame, a pyarrow Table or a dict of columns) to a
        partition (Tiled's logical partitions; a table has one unless it was
        declared with more)."""
        structure = self._transport.json(
            "PATCH",
            _route("table/partition", self.path),
            params={"partition": partition},
            content=_ipc_file(_arrow_table(rows)),
            headers={"Content-Type": protocol.APACHE_ARROW_FILE_MIME_TYPE},
        )
        self._item["attributes"]["structure"] = structure

    def __repr__(self) -> str:
        return f"<TableNode {'/'.join(self.path)!r} columns={self.columns}>"


class Container(Node):
    """A container of nodes; the root of a server is one."""

    @property
    def webhooks(self) -> Any:
        """The server's webhooks (paths are given from the root)."""
        from .webhooks import Webhooks

        return Webhooks(self._transport)

    # ---- reading ------------------------------------------------------------

    def _pages(self, limit: int = protocol.DEFAULT_PAGE_LIMIT) -> Iterator[dict[str, Any]]:
        url: str | None = self._transport.url(_route("search", self.path))
        params: dict[str, Any] | None = {"page[offset]": 0, "page[limit]": limit}
        while url:
            page = self._transport.json("GET", url, params=params)
            yield from page["data"]
            url, params = page["links"].get("next"), None

    def keys(self) -> list[str]:
        return [entry["id"] for entry in self._pages()]

    def items(self) -> list[tuple[str, Node]]:
        return [(e["id"], _node(self._transport, [*self.path, e["id"]], e)) for e in self._pages()]

    def values(self) -> list[Node]:
        return [node for _, node in self.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        page = self._transport.json(
            "GET", _route("search", self.path), params={"page[offset]": 0, "page[limit]": 0}
        )
        return cast(int, page["meta"]["count"])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.keys()

    def __getitem__(self, key: str | Sequence[str]) -> Any:
        path = [*self.path, *_segments(key)]
        item = self._transport.json("GET", _route("metadata", path))["data"]
        return _node(self._transport, path, item)

    # ---- writing ------------------------------------------------------------

    def _create(
        self, key: str, family: str, metadata: Any, specs: Any, structure: Any = None
    ) -> dict[str, Any]:
        sources = []
        if structure is not None:
            mimetype = (
                protocol.ARRAY_MIME_TYPE
                if family == "array"
                else protocol.APACHE_ARROW_FILE_MIME_TYPE
            )
            sources.append(
                protocol.DataSource(structure_family=family, structure=structure, mimetype=mimetype)
            )
        body = protocol.parse_body(
            protocol.CreateNodeRequest,
            {
                "id": key,
                "ancestors": list(self.path),
                "structure_family": family,
                "metadata": metadata,
                "specs": specs,
                "data_sources": sources,
            },
        )
        return cast(
            dict[str, Any],
            self._transport.json(
                "POST", _route("metadata", self.path), json=body.model_dump(mode="json")
            ),
        )

    def create_container(
        self, key: str, *, metadata: Mapping[str, Any] | None = None, specs: Any = None
    ) -> Container:
        self._create(key, "container", metadata, specs)
        return cast(Container, self[key])

    def _written(
        self, key: str, family: str, created: Mapping[str, Any], structure: Any, specs: Any
    ) -> Any:
        """The node just written, built from what was sent (no extra request)."""
        path = [*self.path, key]
        item = protocol.item(
            path,
            structure_family=family,
            structure=structure,
            base_url=self._transport.base_url,
            metadata=created.get("metadata", {}),
            specs=specs,
        )
        return _node(self._transport, path, item)

    def _upload(self, key: str, route: str, content: bytes, content_type: str) -> None:
        try:
            self._transport.request(
                "PUT",
                _route(route, [*self.path, key]),
                content=content,
                headers={"Content-Type": content_type},
            )
        except HookbookError:
            # The node was declared but its data was refused: take the
            # declaration back (it was never announced).
            try:
                self._transport.request(
                    "DELETE", _route("metadata", [*self.path, key]), params={"recursive": "true"}
                )
            except HookbookError:
                pass
            raise

    def write_array(
        self,
        array: Any,
        *,
        key: str,
        metadata: Mapping[str, Any] | None = None,
        specs: Any = None,
        dims: Sequence[str] | None = None,
    ) -> ArrayNode:
        """Store an array-like under ``key``; announced once its data is readable."""
        import numpy as np

        # asarray(order="C"), not ascontiguousarray: that one turns a 0-d array into 1-d.
        data = np.asarray(array, order="C")
        try:
            structure = protocol.ArrayStructure.from_array(data.shape, data.dtype, dims=dims)
        except ValueError as exc:
            raise TypeError(str(exc)) from None
        created = self._create(key, "array", metadata, specs, structure.model_dump(mode="json"))
        self._upload(key, "array/full", data.tobytes(), protocol.ARRAY_MIME_TYPE)
        return cast(ArrayNode, self._written(key, "array", created, structure, specs))

    def write_table(
        self,
        table: Any,
        *,
        key: str,
        metadata: Mapping[str, Any] | None = None,
        specs: Any = None,
    ) -> TableNode:
        """Store a table (a pandas DataFrame, a pyarrow Table or a dict of columns)."""
        arrow = _arrow_table(table)
        structure = protocol.TableStructure.from_arrow_schema(arrow.schema)
        created = self._create(key, "table", metadata, specs, structure.model_dump(mode="json"))
        self._upload(key, "table/full", _ipc_file(arrow), protocol.APACHE_ARROW_FILE_MIME_TYPE)
        return cast(TableNode, self._written(key, "table", created, structure, specs))

    write_dataframe = write_table

    def close(self) -> None:
        """Close the connection (shared by every node from the same ``from_uri``)."""
        self._transport.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Container {'/'.join(self.path) or '/'!r}>"


_FAMILIES: dict[str, type[Node]] = {
    "container": Container,
    "array": ArrayNode,
    "table": TableNode,
}


def _node(transport: Transport, path: Sequence[str], item: Mapping[str, Any]) -> Node:
    family = item["attributes"]["structure_family"]
    return _FAMILIES.get(family, Node)(transport, path, item)
