"""A small closed-loop HTTP/1.1 load generator on raw asyncio sockets (keep-alive, pre-built requests).

A Python HTTP client library would spend more CPU per request than the collector does; this one only
writes prepared bytes and parses the status line and Content-Length, so the server is what gets measured.
Loops are bounded by a duration and only ever target loopback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from engage.bench.report import percentile


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _worker(
    host: str, port: int, requests: list[bytes], offset: int, deadline: float, interval: float, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    next_send = time.perf_counter() + interval * (offset % 97) / 97  # spread the connections' schedules
    try:
        while time.perf_counter() < deadline:
            if interval:
                # Paced: latency counts from the scheduled send time, so server queueing cannot hide.
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                start = next_send
                next_send += interval
            else:
                start = time.perf_counter()
            request = requests[i % len(requests)]
            i += 1
            writer.write(request)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
                result.errors += 1
                break
            result.latencies.append(time.perf_counter() - start)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_load(
    host: str, port: int, requests: list[bytes], *, connections: int, seconds: float, rate: float = 0.0
) -> LoadResult:
    """Closed loop as fast as the server answers, or paced at ``rate`` requests/s over all connections."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the load generator only targets loopback")
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + seconds
    interval = connections / rate if rate > 0 else 0.0
    await asyncio.gather(
        *(_worker(host, port, requests, k * 7, deadline, interval, result) for k in range(connections))
    )
    result.seconds = time.perf_counter() - start
    return result
