"""Start the stand-ins (``engage providers serve``) as a child process for the demo, the benchmarks and tests,
listening exactly where the settings point the channels, and wait until they answer.

``standin_settings`` turns any settings into ones whose channels go to stand-ins on free loopback ports (with the
stand-ins' credentials where none are set); ``start_providers`` starts the process for such settings and refuses
settings that point a channel anywhere else (it would start servers nobody sends to).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.process import free_ports
from deploy.providers.faults import Faults
from deploy.providers.record import Accepted, read_accepted, read_mail
from deploy.providers.serve import (
    STANDIN_FCM_PROJECT,
    STANDIN_FCM_TOKEN,
    STANDIN_TWILIO_FROM,
    STANDIN_TWILIO_SID,
    STANDIN_TWILIO_TOKEN,
)

LOOPBACK = ("127.0.0.1", "localhost")


def standin_settings(settings: Settings, ports: tuple[int, int, int] | None = None) -> Settings:
    """``settings`` with e-mail, push and SMS pointed at stand-ins on ``ports`` (SMTP, FCM, Twilio; default: free
    ones), over plain connections, with the stand-ins' credentials where the settings have none."""
    smtp, fcm, twilio = ports or tuple(free_ports(3))
    s = settings
    return s.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp,
            "smtp_use_tls": False,
            "smtp_start_tls": False,
            "fcm_base_url": f"http://127.0.0.1:{fcm}",
            "fcm_project_id": s.fcm_project_id or STANDIN_FCM_PROJECT,
            "fcm_access_token": s.fcm_access_token or SecretStr(STANDIN_FCM_TOKEN),
            "twilio_base_url": f"http://127.0.0.1:{twilio}",
            "twilio_account_sid": s.twilio_account_sid or STANDIN_TWILIO_SID,
            "twilio_auth_token": s.twilio_auth_token or SecretStr(STANDIN_TWILIO_TOKEN),
            "twilio_from_number": s.twilio_from_number
            or ("" if s.twilio_messaging_service_sid else STANDIN_TWILIO_FROM),
        }
    )


def _loopback_port(name: str, url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.port is None:
        raise ValueError(
            f"{name}={url!r} does not point at a stand-in (http://127.0.0.1:PORT); "
            "use deploy.providers.process.standin_settings"
        )
    return parts.port


def standin_ports(settings: Settings) -> tuple[int, int, int]:
    """The SMTP, FCM and Twilio ports the settings point the channels at; an error naming the setting that points
    elsewhere than a plain loopback stand-in."""
    s = settings
    if s.smtp_host not in LOOPBACK or s.smtp_use_tls or s.smtp_start_tls:
        raise ValueError(
            f"smtp_host={s.smtp_host!r} (TLS {s.smtp_use_tls or s.smtp_start_tls}) is not a plain loopback stand-in; "
            "use deploy.providers.process.standin_settings"
        )
    return (
        s.smtp_port,
        _loopback_port("fcm_base_url", s.fcm_base_url),
        _loopback_port("twilio_base_url", s.twilio_base_url),
    )


@dataclass(frozen=True)
class Providers:
    """The running stand-ins: where they listen and what they accepted so far."""

    proc: subprocess.Popen[bytes]
    record_dir: Path
    smtp_port: int
    fcm_url: str
    twilio_url: str
    log: Path

    def accepted(self) -> list[Accepted]:
        return read_accepted(self.record_dir)

    def mail(self, record_id: str) -> EmailMessage:
        return read_mail(self.record_dir, record_id)

    def health(self) -> dict[str, Any]:
        """``/healthz``: the counts of accepted messages and injected faults per provider."""
        answer: dict[str, Any] = httpx.get(f"{self.fcm_url}/healthz", timeout=5, trust_env=False).json()
        return answer


def _wait_ready(providers: Providers, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if providers.proc.poll() is not None:
            tail = providers.log.read_text(errors="replace")[-3000:] if providers.log.exists() else "(no log)"
            raise RuntimeError(f"the provider stand-ins exited with {providers.proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{providers.fcm_url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the provider stand-ins did not answer in {timeout:.0f} s (see {providers.log})")


def serve_args(
    settings: Settings,
    record_dir: Path,
    faults: Faults | None = None,
    sms_statuses: tuple[str, ...] = ("sent", "delivered"),
) -> list[str]:
    """``engage providers serve`` arguments for stand-ins where ``settings`` point the channels."""
    smtp, fcm, twilio = standin_ports(settings)
    faults = faults or Faults()
    return [
        "providers", "serve",
        "--smtp-port", str(smtp), "--fcm-port", str(fcm), "--twilio-port", str(twilio),
        "--record", str(record_dir),
        "--fail-rate", str(faults.fail_rate), "--seed", str(faults.seed),
        "--latency-ms", str(faults.latency_ms), "--retry-after", str(faults.retry_after),
        "--sms-statuses", ",".join(sms_statuses),
    ]  # fmt: skip


@contextmanager
def start_providers(
    settings: Settings,
    record_dir: Path,
    *,
    faults: Faults | None = None,
    sms_statuses: tuple[str, ...] = ("sent", "delivered"),
    log: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[Providers]:
    """Run ``engage providers serve`` where ``settings`` point the channels, recording to ``record_dir``, until the
    block ends (SIGTERM, SIGKILL after 10 s). Output goes to ``log`` (default ``record_dir/providers.log``)."""
    smtp, fcm, twilio = standin_ports(settings)
    record_dir.mkdir(parents=True, exist_ok=True)
    log = log or record_dir / "providers.log"
    argv = [sys.executable, "-m", "engage.cli", *serve_args(settings, record_dir, faults, sms_statuses)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **settings_env(settings)},
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    providers = Providers(proc, record_dir, smtp, f"http://127.0.0.1:{fcm}", f"http://127.0.0.1:{twilio}", log)
    try:
        _wait_ready(providers, timeout)
        yield providers
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
