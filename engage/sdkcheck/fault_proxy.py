"""A flaky network on loopback: an HTTP/1.1 proxy in front of the collector that loses and mangles requests.

Per request, drawn from a seeded, shuffled deck (so a short run sees every kind): dropped (read, then the
connection closed with no answer: the request never reaches the collector), cut mid-request (half the body
forwarded, then both sides closed), cut mid-response (the collector stored the batch, but the client sees a
broken answer and must resend), or delayed and passed through. One request per connection, so each decision
is about one request. Runs its own asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    drop: float = 0.20
    cut_request: float = 0.05
    cut_response: float = 0.05
    max_delay_seconds: float = 0.15
    seed: int = 25


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, faults: Faults = Faults()) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = faults
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(faults.seed)
        self._deck: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self.port = 0

    def start(self) -> str:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            # Connections still open (a request the browser abandoned on reload) end here, not mid-loop-shutdown;
            # a second cancel ends one that was cancelled while its finally waited for the socket to close.
            left = {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}
            for _ in range(2):
                for task in left:
                    task.cancel()
                if left:
                    left = (await asyncio.wait(left, timeout=1))[1]

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _fate(self) -> str:
        """Drawn from a shuffled deck of 100 fates in the configured shares, so every share really occurs."""
        if not self._deck:
            f = self.faults
            shares = {"dropped": f.drop, "cut_request": f.cut_request, "cut_response": f.cut_response}
            self._deck = [fate for fate, share in shares.items() for _ in range(round(share * 100))]
            self._deck += ["passed"] * (100 - len(self._deck))
            self._rng.shuffle(self._deck)
        return self._deck.pop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            kept = [lines[0]]
            for line in lines[1:]:
                if not line:
                    continue
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
                if name.strip().lower() in ("connection", "keep-alive"):
                    continue
                kept.append(line)
            body = await reader.readexactly(length) if length else b""
            fate = self._fate()
            self.counts[fate] += 1
            if fate == "dropped":
                return
            await asyncio.sleep(self._rng.random() * self.faults.max_delay_seconds)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            try:
                up_writer.write(("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
                if fate == "cut_request":
                    up_writer.write(body[: len(body) // 2])
                    await up_writer.drain()
                    return
                up_writer.write(body)
                await up_writer.drain()
                answer = await up_reader.read()  # the collector closes after one answer (Connection: close)
            finally:
                up_writer.close()
                with contextlib.suppress(Exception):
                    await up_writer.wait_closed()
            writer.write(answer[: len(answer) // 2] if fate == "cut_response" else answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            self.counts["client_gone"] += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.contextmanager
def fault_proxy(upstream: str, faults: Faults = Faults()) -> Iterator[FaultProxy]:
    """A proxy to ``upstream`` (http://host:port); stopped on exit."""
    host, port = upstream.removeprefix("http://").rsplit(":", 1)
    proxy = FaultProxy(host, int(port), faults)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
