"""Typed keys for the objects one hub application shares between its handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from .config import HubConfig
from .db import Database
from .keys import HubKeyring
from .push import Connections
from .security import FailureLimiter

if TYPE_CHECKING:
    from .manifests import ManifestCache
    from .node_objects import NodeObjects
    from .play_evidence import SentCache
    from .routing import RouteSpec

CONFIG = web.AppKey("config", HubConfig)
DB = web.AppKey("db", Database)
KEYRING = web.AppKey("keyring", HubKeyring)
CONNECTIONS = web.AppKey("connections", Connections)
MANIFEST_CACHE: web.AppKey[ManifestCache] = web.AppKey("manifest_cache")
#: What each device's reported bulletins were found to be, between its report batches.
SENT_CACHE: web.AppKey[SentCache] = web.AppKey("sent_cache")
ROUTES: web.AppKey[list[RouteSpec]] = web.AppKey("routes")
#: The secret this hub's nodes share (hub/node_secret.py), and what they fetch from each other.
NODE_SECRET = web.AppKey("node_secret", bytes)
NODE_OBJECTS: web.AppKey[NodeObjects] = web.AppKey("node_objects")
#: Failed enrollments per address (the route is public: codes must not be guessable).
ENROLL_LIMITER = web.AppKey("enroll_limiter", FailureLimiter)
#: Uploads being decoded (hub/probe.py) at once, at most `HubConfig.probe_concurrency`.
PROBES = web.AppKey("probes", asyncio.Semaphore)
#: The hub's notion of "now" for accounts and sessions; tests pass a clock they can move.
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
