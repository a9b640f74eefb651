"""The stand-ins as one process (``engage providers serve``): SMTP, FCM and Twilio on 127.0.0.1 in one event loop,
every accepted message appended to ``DIR/accepted.jsonl`` (e-mails whole in ``DIR/mail/``), for the demo and the
benchmarks, which run the notification service as a separate process and must read back what it delivered.

They check the credentials the settings give the channels (``fcm_project_id``/``fcm_access_token``,
``twilio_account_sid``/``twilio_auth_token``, ``smtp_username``/``smtp_password`` when set); unset ones fall back
to the stand-ins' own (``STANDIN_*``), which ``process.standin_settings`` also gives the channels.

``GET /healthz`` on the FCM port answers once all three listen (FCM starts last), with the counts of accepted
messages and injected faults per provider. SIGTERM or SIGINT stops it: servers closed, the record file closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from config.settings import Settings
from deploy.providers.faults import Faults
from deploy.providers.fcm import FcmServer
from deploy.providers.record import AcceptedLog
from deploy.providers.smtp import SmtpHandler, start_smtp
from deploy.providers.twilio import TwilioServer

log = logging.getLogger(__name__)

STANDIN_FCM_PROJECT = "engage-local"
STANDIN_FCM_TOKEN = "ya29.local-stand-in"
STANDIN_TWILIO_SID = "AC" + "5" * 32
STANDIN_TWILIO_TOKEN = "local-stand-in-token"
STANDIN_TWILIO_FROM = "+15005550006"  # Twilio's documented magic test number


@dataclass(frozen=True)
class ServeConfig:
    smtp_port: int
    fcm_port: int
    twilio_port: int
    record_dir: Path
    faults: Faults = field(default_factory=Faults)
    fcm_project: str = STANDIN_FCM_PROJECT
    fcm_access_token: str = STANDIN_FCM_TOKEN
    twilio_account_sid: str = STANDIN_TWILIO_SID
    twilio_auth_token: str = STANDIN_TWILIO_TOKEN
    smtp_login: tuple[str, str] | None = None
    sms_statuses: tuple[str, ...] = ("sent", "delivered")  # reported to each message's StatusCallback

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        smtp_port: int,
        fcm_port: int,
        twilio_port: int,
        record_dir: Path,
        faults: Faults,
        sms_statuses: tuple[str, ...] = ("sent", "delivered"),
    ) -> ServeConfig:
        s = settings
        login = None
        if s.smtp_username:
            login = (s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
        return cls(
            smtp_port=smtp_port,
            fcm_port=fcm_port,
            twilio_port=twilio_port,
            record_dir=record_dir,
            faults=faults,
            fcm_project=s.fcm_project_id or STANDIN_FCM_PROJECT,
            fcm_access_token=s.fcm_access_token.get_secret_value() if s.fcm_access_token else STANDIN_FCM_TOKEN,
            twilio_account_sid=s.twilio_account_sid or STANDIN_TWILIO_SID,
            twilio_auth_token=s.twilio_auth_token.get_secret_value() if s.twilio_auth_token else STANDIN_TWILIO_TOKEN,
            smtp_login=login,
            sms_statuses=sms_statuses,
        )


async def serve(config: ServeConfig, stop: asyncio.Event) -> None:
    """Run the three stand-ins until ``stop`` is set."""
    record = AcceptedLog(config.record_dir)
    faults = config.faults
    twilio = TwilioServer(
        config.twilio_account_sid,
        config.twilio_auth_token,
        port=config.twilio_port,
        record=record,
        faults=faults,
        report_statuses=config.sms_statuses,
    )
    fcm = FcmServer(config.fcm_project, config.fcm_access_token, port=config.fcm_port, record=record, faults=faults)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "accepted": dict(record.counts), "injected_faults": dict(faults.injected)}
        )

    fcm.add_get("/healthz", healthz)
    smtp: asyncio.Server | None = None
    try:
        smtp = await start_smtp(SmtpHandler(record=record, faults=faults), config.smtp_port, config.smtp_login)
        await twilio.start()
        await fcm.start()
        log.info(
            "providers ready: smtp 127.0.0.1:%d, fcm %s, twilio %s; recording to %s",
            config.smtp_port,
            fcm.base_url,
            twilio.base_url,
            config.record_dir,
        )
        await stop.wait()
    finally:
        await fcm.stop()
        await twilio.stop()
        if smtp is not None:
            smtp.close()
            await smtp.wait_closed()
        record.close()
        log.info("providers stopped; accepted %s", dict(record.counts))


def run(config: ServeConfig) -> None:
    """``serve`` in a new event loop, stopped by SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    asyncio.run(main())
