"""Reading a request body with a size limit, for every collector endpoint (events, outcomes, tracking forms)."""

from __future__ import annotations

from starlette.requests import Request


class TooLarge(Exception):
    """The body is over the endpoint's limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body as sent, refusing more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
