"""The collector benchmark's baseline: the thinnest possible HTTP-to-Kafka endpoint, same stack.

It forwards each request body to Kafka as one message, unvalidated, and answers after the delivery report.
The gap between it and the real collector is the price of per-event validation, grouping and dead letters.
Run: python -m engage.bench.bare_collector PORT TOPIC BOOTSTRAP
"""

from __future__ import annotations

import asyncio
import sys
import threading

import uvicorn
from confluent_kafka import KafkaError, Message, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kafka_io.client import Kafka, kafka_conf


def create_bare_app(topic: str, bootstrap: Kafka) -> Starlette:
    producer = Producer(
        kafka_conf(
            bootstrap,
            {
                "linger.ms": 2,
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "lz4",
            },
        )
    )
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            producer.poll(0.05)

    threading.Thread(target=poll, daemon=True).start()

    async def track(request: Request) -> Response:
        body = await request.body()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(done.set_result, None)

        producer.produce(topic, value=body, on_delivery=delivered)
        await done
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(routes=[Route("/v1/events", track, methods=["POST"])])


if __name__ == "__main__":
    port, topic, bootstrap = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(create_bare_app(topic, bootstrap), host="127.0.0.1", port=port, log_level="warning", access_log=False)
