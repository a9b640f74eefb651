"""Every course calendar, in every worker: a background reader of the compacted courses topic.

Not a Faust agent: an agent in the workers' consumer group would see only its share of the partitions, and
each worker needs every course. The reader assigns all partitions from the beginning (no group commits), keeps
the latest calendar per course id and drops a course on a tombstone. An invalid calendar is not applied: it
goes to the dead-letter topic with the reason (and the log).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from pydantic import ValidationError

from kafka_io.admin import whole_topic_reader
from kafka_io.client import Kafka
from schemas.courses import CourseCalendar
from schemas.errors import describe, summary
from schemas.messages import DeadLetter, kept_raw

log = logging.getLogger(__name__)


class CourseDirectory:
    def __init__(self, bootstrap: Kafka, topic: str, dead_letter: Callable[[DeadLetter], None] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter = dead_letter
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
        try:
            consumer = whole_topic_reader(self.bootstrap, self.topic, "course-directory")
        except Exception:  # as below: reading is best effort, the worker goes on without it
            log.exception("course directory could not open %s", self.topic)
            return
        try:
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
            errors = describe(exc)
            reason = f"invalid course calendar: {summary(errors)}"
            log.error("%s (key %r)", reason, key)
            if self.dead_letter is not None:
                self.dead_letter(
                    DeadLetter(
                        dead_letter_id=f"courses:{uuid.uuid4()}",
                        received_at=datetime.now(UTC),
                        source="processor:courses",
                        reason=reason,
                        errors=errors,
                        raw=kept_raw(value.decode("utf-8", errors="replace")),
                        original_topic=self.topic,
                    )
                )
            return
        self._calendars = {**self._calendars, calendar.course_id: calendar}
