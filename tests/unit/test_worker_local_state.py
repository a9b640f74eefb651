"""A worker's local table files survive a restart only after a clean stop (streams.worker.local_state)."""

from __future__ import annotations

from pathlib import Path

from streams.worker.local_state import discard_unless_stopped_cleanly, mark_stopped_cleanly


def _table_files(datadir: Path) -> Path:
    table = datadir / "v1" / "tables" / "user-state-0.db"
    table.mkdir(parents=True)
    (table / "000001.sst").write_bytes(b"records Kafka may never have got")
    return table


def test_files_left_by_a_crash_are_deleted(tmp_path: Path) -> None:
    table = _table_files(tmp_path / "worker")
    assert discard_unless_stopped_cleanly(tmp_path / "worker") is True
    assert not table.exists()


def test_files_of_a_clean_stop_are_kept_once(tmp_path: Path) -> None:
    datadir = tmp_path / "worker"
    table = _table_files(datadir)
    mark_stopped_cleanly(datadir)
    assert discard_unless_stopped_cleanly(datadir) is False
    assert table.exists()
    # The marker is used up at start: if this run crashes, the next start deletes the files.
    assert discard_unless_stopped_cleanly(datadir) is True
    assert not datadir.exists()


def test_a_first_start_has_nothing_to_delete(tmp_path: Path) -> None:
    assert discard_unless_stopped_cleanly(tmp_path / "new") is False
