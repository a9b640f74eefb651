"""Every course calendar, in every worker: a background reader of the compacted courses topic.

Not a Faust agent: an agent in the workers' consumer group would see only its share of the partitions, and
each worker needs every course. The reader assigns all partitions from the beginning (no group commits), keeps
the latest calendar per course id and drops a course on a tombstone. Invalid calendars are logged and skipped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import ValidationError

from schemas.courses import CourseCalendar

log = logging.getLogger(__name__)


class CourseDirectory:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._calendars: dict[str, CourseCalendar] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def calendars(self) -> Mapping[str, CourseCalendar]:
        return self._calendars

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="course-directory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"course-directory-{uuid.uuid4().hex[:8]}",  # never commits: assign() below
                "enable.auto.commit": False,
            }
        )
        try:
            meta = consumer.list_topics(self.topic, timeout=30).topics.get(self.topic)
            partitions = sorted(meta.partitions) if meta is not None and meta.partitions else [0]
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                self.apply(msg.key(), msg.value())
        except Exception:  # the directory must never take the worker down; scoring goes on without calendars
            log.exception("course directory stopped reading %s", self.topic)
        finally:
            consumer.close()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One message of the courses topic: a calendar, or a tombstone (no value) removing the course."""
        if value is None:
            if key is not None:
                self._calendars = {k: v for k, v in self._calendars.items() if k != key.decode()}
            return
        try:
            calendar = CourseCalendar.model_validate_json(value)
        except ValidationError as exc:
            log.error("ignoring an invalid course calendar (key %r): %s", key, exc)
            return
        self._calendars = {**self._calendars, calendar.course_id: calendar}
