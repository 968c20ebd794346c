"""The throw-away PostgreSQL that `make test` runs the hub against (issue #10)."""

from __future__ import annotations

import os

import asyncpg
import pytest

from hub.testing_postgres import PostgresUnavailable, ThrowawayPostgres, server_binaries


def _server_or_skip() -> None:
    try:
        server_binaries()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise  # make test installs it: missing under CI is a failure, not a skip
        pytest.skip(str(exc))


async def test_a_throwaway_server_gives_fresh_databases_and_leaves_nothing() -> None:
    _server_or_skip()
    with ThrowawayPostgres() as pg:
        root = pg.root
        first, second = pg.create_database(), pg.create_database()
        assert first != second
        conn = await asyncpg.connect(first)
        try:
            await conn.execute("CREATE TABLE t (x int)")
            await conn.execute("INSERT INTO t VALUES (1)")
            assert await conn.fetchval("SELECT count(*) FROM t") == 1
        finally:
            await conn.close()
        other = await asyncpg.connect(second)
        try:
            assert await other.fetchval("SELECT to_regclass('t')") is None
        finally:
            await other.close()
        with pytest.raises(ValueError):
            pg.create_database("x; DROP DATABASE postgres")
    assert not root.exists()
