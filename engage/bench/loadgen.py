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

REFUSALS = (429, 503)  # overload answered as designed, when they carry Retry-After


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0  # connections that failed or broke mid-answer (the generator reconnects)
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refusals_without_retry_after: int = 0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    @property
    def refused(self) -> int:
        """429s and 503s that said when to retry: the service protecting itself, not failing."""
        return sum(n for status, n in self.statuses.items() if status in REFUSALS) - self.refusals_without_retry_after

    @property
    def failed(self) -> int:
        """Broken connections, 5xx other than a 503 with Retry-After, and refusals that gave no Retry-After."""
        bad = sum(n for status, n in self.statuses.items() if status >= 500 and status not in REFUSALS)
        return self.errors + bad + self.refusals_without_retry_after

    @property
    def error_share(self) -> float:
        return self.failed / max(1, self.requests + self.errors)

    @property
    def refused_share(self) -> float:
        return self.refused / max(1, self.requests + self.errors)


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> bytes:
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status and whether a Retry-After header came with it."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    retry_after = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"retry-after":
            retry_after = int(value.strip()) >= 1
    if length:
        await reader.readexactly(length)
    return status, retry_after


async def _worker(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    step: int,
    deadline: float,
    interval: float,
    result: LoadResult,
) -> None:
    i = offset  # this connection sends requests offset, offset + step, ...: together they send each in turn
    next_send = time.perf_counter() + interval * offset / step  # spread the connections' schedules
    writer: asyncio.StreamWriter | None = None
    try:
        while time.perf_counter() < deadline:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError:
                    result.errors += 1
                    await asyncio.sleep(0.1)
                    continue
            if interval:
                # Paced: latency counts from the scheduled send time, so server queueing cannot hide.
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
                start = next_send
                next_send += interval
            else:
                start = time.perf_counter()
            request = requests[i % len(requests)]
            i += step
            try:
                writer.write(request)
                status, retry_after = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
                result.errors += 1  # counted, then a new connection: a broken server shows as errors, not a stop
                writer.close()
                writer = None
                continue
            result.latencies.append(time.perf_counter() - start)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status in REFUSALS and not retry_after:
                result.refusals_without_retry_after += 1
    finally:
        if writer is not None:
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
        *(_worker(host, port, requests, k, connections, deadline, interval, result) for k in range(connections))
    )
    result.seconds = time.perf_counter() - start
    return result
