"""Just enough HTTP/1.1 for the generator: a request built once as bytes, a response read back.

Hand-written rather than a client library so that the client's own CPU, which competes with a
server on the same machine, stays small and predictable.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def request_bytes(method: str, host: str, port: int, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The whole request, head and body, ready to write."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode() + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def connect(host: str, port: int) -> Connection:
    reader, writer = await asyncio.open_connection(host, port)
    # Small requests must leave at once, not wait for Nagle to batch them.
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body), close
