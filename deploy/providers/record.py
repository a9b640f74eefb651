"""What the stand-ins accepted, kept where a reader outside the process can see it at once.

``DIR/accepted.jsonl``: one JSON object per accepted message (``Accepted``), appended before the provider answers
"accepted" - a message the client was told is accepted is always on record; a process killed between the two
leaves a record the client never heard about, as a real provider can. Each line goes to the file in a single
``write`` on a descriptor opened ``O_APPEND``, with no buffer in between: a SIGKILL cannot leave a line in the
process, and lines from several writers never interleave.

``DIR/mail/<id>.eml``: every accepted e-mail exactly as it arrived (written whole, then renamed into place, before
its line is appended: a reader who sees the line finds the file).

How to find the intervention of a record: e-mail carries ``X-Engage-Intervention`` and push carries
``data.intervention_id`` (both set by our channels), so ``intervention_id`` is filled; Twilio has no field for our
data (the ``StatusCallback`` token is opaque), so SMS records keep ``to``, ``body`` and ``status_callback``, and are
joined to an intervention through the send ledger by ``provider_id`` (the message SID our channel records).
"""

from __future__ import annotations

import email
import json
import os
import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

ACCEPTED_FILE = "accepted.jsonl"
MAIL_DIR = "mail"
_RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Accepted:
    """One message a stand-in accepted. ``id``: this record's own id (names the e-mail's ``.eml``);
    ``provider_id``: what the provider answered and our channel records as the delivery's id (the e-mail's
    Message-ID, FCM's message name, Twilio's SID); ``subject``: e-mail subject or push title; ``body``: push or
    SMS text (an e-mail's body is in its ``.eml``)."""

    provider: str
    id: str
    provider_id: str
    to: str
    accepted_at: datetime
    intervention_id: str | None = None
    subject: str | None = None
    body: str | None = None
    status_callback: str | None = None

    def to_json(self) -> str:
        fields: dict[str, Any] = asdict(self)
        fields["accepted_at"] = self.accepted_at.astimezone(UTC).isoformat()
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> Accepted:
        fields = json.loads(line)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        fields["accepted_at"] = datetime.fromisoformat(fields["accepted_at"])
        return cls(**fields)


class AcceptedLog:
    """The writer: ``append`` one accepted message (and an e-mail's raw bytes). Safe from several threads (the
    in-test SMTP server runs in its own). ``counts``: records appended per provider by this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        (directory / MAIL_DIR).mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(directory / ACCEPTED_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def append(self, accepted: Accepted, raw: bytes | None = None) -> None:
        line = (accepted.to_json() + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise RuntimeError(f"the accepted log in {self.directory} is closed")
            if raw is not None:
                final = self.directory / MAIL_DIR / f"{accepted.id}.eml"
                partial = final.with_suffix(".eml.partial")
                partial.write_bytes(raw)
                os.replace(partial, final)
            written = os.write(self._fd, line)
            if written != len(line):  # a full disk: say so rather than leave half a line
                raise OSError(f"wrote {written} of {len(line)} bytes to {self.directory / ACCEPTED_FILE}")
            self.counts[accepted.provider] += 1

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_accepted(directory: Path) -> list[Accepted]:
    """Every record in ``directory/accepted.jsonl``, in the order accepted ([] before the first). A last line
    without its newline is one being written and is left for the next read; a complete line that does not parse
    is an error naming the file and line."""
    path = directory / ACCEPTED_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")[:-1]  # the part after the last newline is not a whole line yet
    records: list[Accepted] = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(Accepted.from_json(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: not an accepted-message record ({exc}): {line[:200]!r}") from exc
    return records


def read_mail(directory: Path, record_id: str) -> EmailMessage:
    """The e-mail accepted as record ``record_id``, parsed."""
    if not _RECORD_ID.match(record_id):
        raise ValueError(f"{record_id!r} is not a record id")
    path = directory / MAIL_DIR / f"{record_id}.eml"
    message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    assert isinstance(message, EmailMessage)  # the default policy's message factory
    return message
