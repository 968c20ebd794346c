"""Which hub node the agent talks to (pure: plain values in, plain values out).

The enrolled hub comes first and is the one the agent returns to; the other nodes are the
ones the hub signed into the manifest (`Manifest.hub_urls`), never any other address. Their
order differs from device to device (rotated by the device id), so when a node dies its
devices spread over the survivors instead of all trying the same one first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def normalized(url: str) -> str:
    return url.rstrip("/")


def failover_order(preferred: str, listed: Sequence[str], device_id: str) -> list[str]:
    """The enrolled hub, then every other listed node once, in this device's own order."""
    home = normalized(preferred)
    others = sorted({normalized(url) for url in listed} - {home})
    if others:
        turn = int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:4]) % len(others)
        others = others[turn:] + others[:turn]
    return [home, *others]


def after_failure(order: Sequence[str], current: str, failures: int) -> tuple[str, bool]:
    """The node to try after `current` failed, `failures` times in a row counting this one;
    and whether every node has now failed in turn (time for a longer back-off)."""
    if current not in order:
        return order[0], True
    following = order[(order.index(current) + 1) % len(order)]
    return following, failures % len(order) == 0
