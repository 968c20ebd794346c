"""The console asks each API handler's permission of the route that declares it: one
declaration, so a page can never check less than the API would."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import bulletins, devices, users
from hub.auth import Permission
from hub.console import declared_permission
from hub.routing import Ctx
from hub.testing import running_hub


async def test_declared_permission_is_the_routes(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        app = hub.app
        assert declared_permission(app, bulletins.list_bulletins) is Permission.READ
        assert declared_permission(app, devices.send_command) is Permission.DEVICES_COMMAND
        assert declared_permission(app, users.move_user) is Permission.USERS_MANAGE
        assert declared_permission(app, bulletins.create_emergency) is Permission.EMERGENCY

        async def not_a_route(ctx: Ctx) -> None:
            return None

        # A handler no route declares cannot be run by the console at all.
        with pytest.raises(RuntimeError, match="not an operator route"):
            declared_permission(app, not_a_route)
