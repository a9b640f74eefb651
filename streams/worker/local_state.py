"""A worker keeps its local table files (RocksDB) from one run to the next only when the last run stopped cleanly.

Faust writes a record into RocksDB at once and onto the changelog topic a moment later, and notes per partition
the newest changelog offset Kafka acknowledged. A worker killed in between leaves local records (and partition
positions) that Kafka never got. Started again on the same files it would resume past events whose folded state
exists only on this disk; once the partition moves to another worker (which restores from Kafka), those students
have lost them (the chaos suite caught it). So a marker is written when a stop was clean (every changelog write
acknowledged), and a start without it deletes the local files: the state is then restored from Kafka alone.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

CLEAN_MARKER = "stopped-cleanly"


def discard_unless_stopped_cleanly(datadir: Path) -> bool:
    """Delete ``datadir`` unless the last run left the clean-stop marker (which is used up). True if deleted."""
    marker = datadir / CLEAN_MARKER
    if marker.exists():
        marker.unlink()  # from now on, a crash leaves no marker behind
        return False
    if not datadir.exists():
        return False
    shutil.rmtree(datadir)
    log.warning("the last run of this worker did not stop cleanly: local state deleted, restoring it from Kafka")
    return True


def mark_stopped_cleanly(datadir: Path) -> None:
    """Call only when every changelog write of the run was acknowledged by Kafka."""
    datadir.mkdir(parents=True, exist_ok=True)
    (datadir / CLEAN_MARKER).write_text(f"{time.time():.0f}\n")
