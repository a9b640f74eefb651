"""Where the tracking secret comes from, and the ``TrackingLinks`` every process builds from the settings.

``tracking_secret`` (and ``tracking_retired_secrets``, comma-separated, still accepted after a rotation) when set:
every host minting or verifying links needs the same value. Unset, a random 32-byte secret is created once in
``run_dir/tracking.key`` (owner-only) and shared by the processes of this host: the demo and tests work with no
configuration and no secret is ever hard-coded.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from config.settings import Settings
from notifications.tracking.links import LinkPolicy, TokenCodec, TokenKeys, TrackingLinks


def _host_secret(path: Path) -> bytes:
    """The secret in ``path``, created if it is not there yet: written whole to a private temporary file, then
    linked into place (atomic, and refused if another process got there first), so no reader sees half of it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tracking-key-")  # 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it: use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip().encode()


def tracking_secrets(settings: Settings) -> list[bytes]:
    """The secrets, the minting one first."""
    if settings.tracking_secret is None:
        return [_host_secret(settings.run_dir / "tracking.key")]
    current = settings.tracking_secret.get_secret_value().encode()
    retired = settings.tracking_retired_secrets.get_secret_value() if settings.tracking_retired_secrets else ""
    return [current, *(s.strip().encode() for s in retired.split(",") if s.strip())]


def tracking_base_url(settings: Settings) -> str:
    """Where the tracking endpoints are reachable by students and providers (the collector's public address)."""
    return settings.tracking_public_url or f"http://{settings.collector_host}:{settings.collector_port}"


def tracking_links(settings: Settings) -> TrackingLinks:
    s = settings
    policy = LinkPolicy(
        base_url=tracking_base_url(s),
        action_url=s.tracking_action_url,
        preferences_url=s.tracking_preferences_url,
        link_ttl=timedelta(days=s.tracking_link_days),
        unsubscribe_ttl=timedelta(days=s.tracking_unsubscribe_days),
        status_ttl=timedelta(days=s.tracking_status_days),
    )
    return TrackingLinks(TokenCodec(TokenKeys(tracking_secrets(s))), policy)
