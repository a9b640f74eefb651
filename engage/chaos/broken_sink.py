"""A deliberately broken sink, for proving the chaos verifier can fail: it commits offsets before inserting.

`engage chaos --broken-sink` runs this instead of `engage sink all`. When it is killed after a commit and
before its insert landed (e.g. while ClickHouse is down and the insert is being retried), those rows are gone:
Kafka thinks they were stored. A correct verifier must then report them missing. Never used outside chaos.
"""

from __future__ import annotations

import logging

from confluent_kafka import TopicPartition

from config.settings import get_settings
from sinks.positions import SINK_NAMES
from sinks.runner import SinkRunner
from sinks.service import run_sinks


class CommitsBeforeInserting(SinkRunner):
    """The classic at-most-once bug: acknowledge first, write second."""

    def _flush(self) -> None:
        batch = self._batch
        if not batch.empty:
            self._consumer.commit(
                offsets=[TopicPartition(self.topic, p, o + 1) for p, o in batch.last_offsets.items()],
                asynchronous=False,
            )
        super()._flush()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_sinks(get_settings(), SINK_NAMES, runner_class=CommitsBeforeInserting)


if __name__ == "__main__":
    main()
