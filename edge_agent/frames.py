"""The board's screen as a small picture for its page on the hub (hub/frames.py).

Posted beside each health report when the manifest asks for it (frame_interval_s), at most
that often, and only while the hub answers: a picture is news or nothing, so none is kept in
the outbox to fill the SD card while the hub is away. The screen is copied on the loop (a
blit); scaling and encoding run in a worker thread, off the loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from typing import TYPE_CHECKING

from .hubclient import HubRejected, HubUnavailable
from .players.router import PlayerRouter

if TYPE_CHECKING:
    import pygame

    from .agent import Agent
    from .players.base import Player
    from .players.display import DisplayPlayer

log = logging.getLogger("edge_agent")

#: The picture's width in pixels (the height keeps the screen's proportions), and the bytes
#: it may take: the hub refuses larger ones.
WIDTH = 320
MAX_BYTES = 48 * 1024


def display_of(player: Player) -> DisplayPlayer | None:
    """The screen among the agent's players, if it has one. Asked of the loaded modules, so
    a speaker, which never loads pygame (tests/test_agent_light.py), does not load it here."""
    display_module = sys.modules.get("edge_agent.players.display")
    if display_module is None:
        return None  # no screen was ever made in this process
    kind: type[DisplayPlayer] = display_module.DisplayPlayer
    if isinstance(player, kind):
        return player
    if isinstance(player, PlayerRouter):
        return next((b for b in player.backends if isinstance(b, kind)), None)
    return None


def encode_frame(screen: pygame.Surface, width: int = WIDTH, max_bytes: int = MAX_BYTES) -> bytes:
    """`screen` scaled to `width` px wide as a JPEG of at most `max_bytes` (narrower until it
    fits). Blocking: a worker thread's job."""
    import pygame  # a board's agent has it loaded already

    while True:
        w, h = screen.get_size()
        size = (width, max(1, round(h * width / w)))
        smooth = screen.get_bitsize() in (24, 32)  # smoothscale takes only these
        scale = pygame.transform.smoothscale if smooth else pygame.transform.scale
        small = scale(screen, size)
        out = io.BytesIO()
        pygame.image.save(small, out, "frame.jpg")
        data = out.getvalue()
        if len(data) <= max_bytes or width <= 80:
            return data
        width //= 2


class FrameSender:
    """Posts the screen's picture when it is due (see the module's docstring)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._last: float | None = None
        self.sent = 0

    def due(self) -> bool:
        manifest = self.agent.manifest
        interval = manifest.frame_interval_s if manifest is not None else None
        if interval is None or display_of(self.agent.player) is None:
            return False
        return self._last is None or time.monotonic() - self._last >= interval

    async def maybe_send(self) -> bool:
        """Post a picture if one is due and the hub answers; True when the hub took it."""
        if not self.due():
            return False
        display = display_of(self.agent.player)
        assert display is not None
        self._last = time.monotonic()
        import pygame  # loaded with the display

        try:
            screen = display.frame.copy()  # a blit on the loop; the rest off it
            picture = await asyncio.to_thread(encode_frame, screen)
        except (pygame.error, OSError) as exc:
            log.warning("screen picture not made: %s", exc)
            return False
        try:
            await self.agent.client.post_frame(picture, "image/jpeg")
        except (HubUnavailable, HubRejected) as exc:
            log.info("screen picture not sent: %s", exc)
            return False
        self.sent += 1
        return True
