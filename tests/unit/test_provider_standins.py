"""The stand-ins' pure parts: seeded fault decisions, the accepted-message record and its reader, and the settings
that point the channels at the stand-ins."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import Settings
from deploy.providers.faults import Faults
from deploy.providers.process import standin_ports, standin_settings
from deploy.providers.record import ACCEPTED_FILE, Accepted, AcceptedLog, read_accepted, read_mail


def test_faults_are_seeded_per_provider_and_near_the_rate():
    a, b = Faults(fail_rate=0.3, seed=11), Faults(fail_rate=0.3, seed=11)
    seq_a = [a.draw("fcm") for _ in range(2000)]
    for _ in range(500):
        b.draw("smtp")  # another provider's traffic does not shift FCM's faults
    seq_b = [b.draw("fcm") for _ in range(2000)]
    assert seq_a == seq_b
    refused = [f for f in seq_a if f is not None]
    assert 0.25 < len(refused) / 2000 < 0.35 and a.injected["fcm"] == len(refused)
    assert {f.status for f in refused} == {429, 503} and {f.retry_after for f in refused} == {1.0}
    assert seq_a != [Faults(fail_rate=0.3, seed=12).draw("fcm") for _ in range(2000)]


def test_fault_answers_per_provider_and_the_limits():
    always = Faults(fail_rate=1.0)
    assert {always.draw("smtp").status for _ in range(50)} == {451}  # type: ignore[union-attr]
    twilio = [always.draw("twilio") for _ in range(50)]
    assert {f.status for f in twilio if f} == {429, 503} and {f.retry_after for f in twilio if f} == {None}
    assert all(Faults(fail_rate=0.0).draw("fcm") is None for _ in range(100))
    with pytest.raises(ValueError, match="fail_rate"):
        Faults(fail_rate=1.5)
    with pytest.raises(ValueError, match="negative"):
        Faults(latency_ms=-1)


def accepted(provider: str, n: int, **extra: str) -> Accepted:
    return Accepted(provider, f"id{n}", f"pid-{n}", "sam@example.org", datetime(2026, 3, 1, 12, n, tzinfo=UTC), **extra)


def test_records_round_trip_and_an_email_is_kept_whole(tmp_path: Path):
    log = AcceptedLog(tmp_path)
    raw = b"Subject: Hi\r\nX-Engage-Intervention: iv-1\r\n\r\nbody\r\n"
    log.append(accepted("smtp", 1, intervention_id="iv-1", subject="Hi"), raw)
    log.append(accepted("twilio", 2, body="Hi ☺", status_callback="http://127.0.0.1/x"))
    log.close()
    first, second = read_accepted(tmp_path)
    assert first == accepted("smtp", 1, intervention_id="iv-1", subject="Hi")
    assert second.body == "Hi ☺" and second.accepted_at == datetime(2026, 3, 1, 12, 2, tzinfo=UTC)
    assert read_mail(tmp_path, "id1")["X-Engage-Intervention"] == "iv-1"
    assert log.counts == {"smtp": 1, "twilio": 1}
    with pytest.raises(RuntimeError, match="closed"):
        log.append(accepted("fcm", 3))


def test_the_reader_leaves_a_line_being_written_and_names_a_broken_one(tmp_path: Path):
    assert read_accepted(tmp_path) == []
    path = tmp_path / ACCEPTED_FILE
    path.write_text(accepted("fcm", 1).to_json() + "\n" + accepted("fcm", 2).to_json()[:30])
    assert [r.id for r in read_accepted(tmp_path)] == ["id1"]
    path.write_text(accepted("fcm", 1).to_json() + "\n{not json}\n")
    with pytest.raises(ValueError, match=rf"{ACCEPTED_FILE}:2: not an accepted-message record"):
        read_accepted(tmp_path)


def test_mail_ids_cannot_leave_the_mail_directory(tmp_path: Path):
    (tmp_path / "secret.eml").write_bytes(b"Subject: no\r\n\r\n")
    with pytest.raises(ValueError, match="not a record id"):
        read_mail(tmp_path, "../secret")


def test_standin_settings_point_every_channel_at_loopback_and_keep_given_credentials(tmp_path: Path):
    given = Settings(run_dir=tmp_path, fcm_project_id="mine", twilio_auth_token=SecretStr("tok"))
    s = standin_settings(given, (2525, 2526, 2527))
    assert standin_ports(s) == (2525, 2526, 2527)
    assert (s.fcm_project_id, s.twilio_auth_token.get_secret_value()) == ("mine", "tok")  # type: ignore[union-attr]
    assert s.fcm_access_token is not None and s.twilio_account_sid.startswith("AC") and s.twilio_from_number
    chosen = standin_ports(standin_settings(given))  # free ports, all different
    assert len(set(chosen)) == 3 and all(p > 0 for p in chosen)


def test_settings_pointing_a_channel_elsewhere_are_refused_by_name(tmp_path: Path):
    with pytest.raises(ValueError, match=re.escape("fcm_base_url='https://fcm.googleapis.com'")):
        standin_ports(Settings(run_dir=tmp_path))
    with pytest.raises(ValueError, match=re.escape("smtp_host='mail.school.example'")):
        standin_ports(
            standin_settings(Settings(run_dir=tmp_path)).model_copy(update={"smtp_host": "mail.school.example"})
        )
