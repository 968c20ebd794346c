"""Hub configuration: one pydantic model, passed to `create_app`; nothing is read from globals."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loa_contract import HubUrl

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MiB = 1024 * 1024
#: The province's newspaper and broadcaster unless `hub serve --newspaper-unit` names others.
NEWSPAPER_UNITS = frozenset({"baotinh"})


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path
    #: The hub's database on a PostgreSQL server (postgresql://USER@HOST/DB); None: the SQLite
    #: file in data_dir (`db_path`). data_dir keeps the keys and media either way.
    database_url: str | None = None
    media_max_bytes: int = Field(default=200 * MiB, gt=0)
    #: How often a board posts a picture of its screen (at least a minute; None: never), and
    #: the most bytes one picture may have.
    frame_interval: timedelta | None = timedelta(seconds=60)
    frame_max_bytes: int = Field(default=64 * 1024, gt=0)
    enrollment_ttl: timedelta = timedelta(hours=24)
    manifest_lifetime: timedelta = timedelta(days=14)
    #: A device not on the WebSocket counts as online this long after it was last heard from.
    offline_after: timedelta = timedelta(seconds=150)
    session_idle: timedelta = timedelta(minutes=30)
    session_lifetime: timedelta = timedelta(hours=12)
    #: The regulations ask for a new password at least every 6 months.
    password_max_age: timedelta = timedelta(days=182)
    #: A new password may not repeat any of this many previous ones (the current included).
    password_history: int = Field(default=5, ge=1, le=50)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout: timedelta = timedelta(minutes=15)
    #: Secure flag on the console cookie; None sets it when the request came over TLS (as
    #: the hub itself or a trusted proxy's X-Forwarded-Proto says).
    cookie_secure: bool | None = None
    #: Reverse proxies (addresses or networks) whose X-Forwarded-Proto/-For are believed.
    trusted_proxies: tuple[str, ...] = ()
    #: How long an ordinary pushed command stays valid; emergencies last until valid_until.
    command_ttl: timedelta = timedelta(minutes=10)
    #: aiohttp leaves WebSocket heartbeats off by default; dead 3G links must be noticed.
    ws_heartbeat_s: float = Field(default=30.0, gt=0)
    #: A slow socket must not hold up a province-wide emergency push: a device whose frames
    #: sit unsent this long, or more than ws_max_backlog_bytes of them, is dropped (it
    #: reconnects and catches up).
    ws_send_timeout_s: float = Field(default=5.0, gt=0)
    ws_max_backlog_bytes: int = Field(default=256 * 1024, ge=4096)
    #: scrypt cost (N). 2**14 with r=8 is ~16 MiB and tens of ms; tests may lower it.
    scrypt_n: int = Field(default=2**14, ge=2)
    #: The address technicians give `edge-agent enroll` (behind a TLS reverse proxy the
    #: request's own origin is the internal one); None: the console request's origin.
    #: It is also this node's address in `Manifest.hub_urls` when several nodes share the
    #: database (hub/nodes.py); a node without one serves, but devices do not fail over to it.
    public_url: HubUrl | None = None
    #: The address the other hub nodes reach this node at, for media they lack (an internal
    #: one behind a proxy, where every node may share one public_url); None: public_url.
    node_url: HubUrl | None = None
    #: Units that are the province's newspaper and broadcaster (Báo và Phát thanh, truyền
    #: hình): their monthly quota in reports is ≥ 4 bulletins of 2–5 minutes.
    newspaper_units: frozenset[str] = NEWSPAPER_UNITS
    resume_mode: Literal["resume", "restart"] = "resume"
    #: How often the hub re-signs manifests that passed half their lifetime.
    refresh_interval: timedelta = timedelta(hours=1)
    #: Health samples are telemetry: kept this long (the latest stays on the device row).
    health_retention: timedelta = timedelta(days=30)
    #: Emergencies cancelled this recently are listed in `Manifest.cancelled`.
    cancelled_memory: timedelta = timedelta(days=1)
    #: How often a node says it is alive in the shared database, and how long after it was
    #: last heard from it is taken for gone (dropped from the hub_urls devices are given).
    node_heartbeat: timedelta = timedelta(seconds=30)
    node_fresh: timedelta = timedelta(minutes=3)
    #: Uploads decoded at once (ffmpeg, Pillow, pdftotext): each may take a core for
    #: minutes, so more uploads than this wait their turn instead of starving the node.
    probe_concurrency: int = Field(default=2, ge=1)
    #: The province's name and its administrative code (mã đơn vị hành chính, "31" for Hải
    #: Phòng): a CAP area naming either reaches every commune (hub/cap.py).
    province_name: str | None = None
    province_code: str | None = None
    #: Networks the hub may fetch from although they are not public (a CAP server on the
    #: province's own network); everything else private, loopback or link-local is refused
    #: (hub/outbound.py).
    outbound_allowed_networks: tuple[str, ...] = ()
    outbound_timeout_s: float = Field(default=15.0, gt=0)
    outbound_attempts: int = Field(default=3, ge=1, le=10)
    #: The largest CAP document and the largest CAP resource (audio) the hub takes.
    cap_max_bytes: int = Field(default=1 * MiB, gt=0)
    cap_resource_max_bytes: int = Field(default=20 * MiB, gt=0)
    #: The `sender` of the CAP alerts the hub publishes (GET /api/v1/cap/feed.atom).
    cap_sender: str = Field(default="loa-hub", pattern=r"^[^\s,<&]{1,200}$")
    #: How often the CAP feeds (`hub cap-feed add`) are looked at for ones that are due.
    cap_feed_tick: timedelta = timedelta(seconds=30)
    #: A device in fault this long opens an incident on its own (hub/incidents.py); the
    #: fleet is looked at every `incident_check_interval`.
    incident_after: timedelta = timedelta(minutes=30)
    incident_check_interval: timedelta = timedelta(minutes=1)
    #: How often a lower hub polls its upper hubs (`hub upstream add`, hub/exchange.py).
    exchange_interval: timedelta = timedelta(minutes=1)

    @field_validator("trusted_proxies", "outbound_allowed_networks")
    @classmethod
    def _networks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an IP address or network") from exc
        return values

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("a PostgreSQL URL starts with postgresql://")
        return value or None

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in self.trusted_proxies)

    @cached_property
    def outbound_networks(self) -> tuple[Network, ...]:
        return tuple(
            ipaddress.ip_network(v.strip(), strict=False) for v in self.outbound_allowed_networks
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hub.sqlite3"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def releases_dir(self) -> Path:
        """Agent release files recorded by `hub release add`, named by sha256 (issue #14)."""
        return self.data_dir / "releases"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "hub_signing_key.pem"

    @property
    def extra_keys_dir(self) -> Path:
        """Public keys (PEM) the agents should also trust: the next key during a rotation."""
        return self.data_dir / "trusted_keys"
