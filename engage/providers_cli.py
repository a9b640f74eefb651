"""`engage providers serve`: the local stand-ins for SMTP, FCM and Twilio as one process (``deploy.providers``),
for the demo and the benchmarks; never used in production."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from config.settings import get_settings

providers_app = typer.Typer(
    no_args_is_help=True, help="Local stand-ins for the e-mail, push and SMS providers (demo, benchmarks, tests)."
)


def _port_of(url: str) -> int | None:
    return urlsplit(url).port


@providers_app.command("serve")
def serve(
    record: Annotated[Path, typer.Option(help="Directory for accepted.jsonl and mail/<id>.eml")],
    smtp_port: Annotated[int | None, typer.Option(help="SMTP port (default: smtp_port)")] = None,
    fcm_port: Annotated[int | None, typer.Option(help="FCM port (default: the port of fcm_base_url)")] = None,
    twilio_port: Annotated[int | None, typer.Option(help="Twilio port (default: the port of twilio_base_url)")] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests refused (429/503, SMTP 451)")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the refusals")] = 0,
    latency_ms: Annotated[float, typer.Option(min=0.0, help="Added before every answer")] = 0.0,
    retry_after: Annotated[float, typer.Option(min=0.0, help="Retry-After (s) FCM sends with 429/503")] = 1.0,
    sms_statuses: Annotated[
        str, typer.Option(help="Statuses reported to each SMS's StatusCallback, comma separated ('' for none)")
    ] = "sent,delivered",
) -> None:
    """Run the stand-ins on 127.0.0.1 until SIGTERM, recording every accepted message."""
    from deploy.providers.faults import Faults
    from deploy.providers.serve import ServeConfig, run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    ports = {
        "--smtp-port": smtp_port or settings.smtp_port,
        "--fcm-port": fcm_port or _port_of(settings.fcm_base_url),
        "--twilio-port": twilio_port or _port_of(settings.twilio_base_url),
    }
    missing = [name for name, port in ports.items() if not port]
    if missing:
        raise typer.BadParameter(f"no port given and none in the settings' base URL: {', '.join(missing)}")
    try:
        faults = Faults(fail_rate=fail_rate, seed=seed, latency_ms=latency_ms, retry_after=retry_after)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    config = ServeConfig.from_settings(
        settings,
        smtp_port=int(ports["--smtp-port"] or 0),
        fcm_port=int(ports["--fcm-port"] or 0),
        twilio_port=int(ports["--twilio-port"] or 0),
        record_dir=record,
        faults=faults,
        sms_statuses=tuple(s.strip() for s in sms_statuses.split(",") if s.strip()),
    )
    run(config)
