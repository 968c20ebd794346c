"""Hub backups: taken while the hub runs, restored into a hub that serves the same data;
a damaged or foreign file is refused and changes nothing."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from hub.backup import BackupError, make_backup, prune, restore_backup
from hub.cli import main
from hub.config import HubConfig
from hub.testing import ADMIN, ADMIN_PASSWORD, database_for_tests, running_hub


async def _seeded_backup(tmp_path: Path) -> tuple[Path, bytes, str, list[tuple[int, int]]]:
    """A backup taken from a live hub with a commune, an account and a media file."""
    seen: list[tuple[int, int]] = []
    payload = ("Thông báo của xã. " * 400).encode()
    async with running_hub(tmp_path / "live") as hub:
        await hub.commune("00001")
        await hub.user("bientap", "reviewer")
        media = await hub.call(
            "POST",
            "/api/v1/media",
            data=payload,
            headers={"Content-Type": "text/plain"},
            expect=201,
        )
        target = tmp_path / "out" / "hub.tar"
        # While the hub is up and holding its database open: the online backup's whole point.
        summary = make_backup(hub.config, target, lambda done, total: seen.append((done, total)))
    assert summary.path == target and summary.files >= 3
    return target, payload, media["sha256"], seen


async def test_backup_while_running_then_restore_serves_the_same_hub(
    tmp_path: Path, another_database: str | None
) -> None:
    archive, payload, sha, seen = await _seeded_backup(tmp_path)
    totals = {total for _done, total in seen}
    assert len(totals) == 1 and seen[-1][0] == seen[-1][1], "progress reaches its total"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)

    restored = tmp_path / "restored"
    seen_restore: list[tuple[int, int]] = []
    restore_backup(
        archive,
        restored,
        lambda d, t: seen_restore.append((d, t)),
        database_url=another_database,
    )
    assert seen_restore[-1][0] == seen_restore[-1][1]
    async with running_hub(restored, database_url=another_database) as hub:
        # running_hub adds its own admin only on an empty database; the restored one has it.
        await hub.login(ADMIN, ADMIN_PASSWORD)
        assert [c["code"] for c in await hub.call("GET", "/api/v1/communes")] == ["00001"]
        users = {u["username"] for u in await hub.call("GET", "/api/v1/users")}
        assert "bientap" in users
        assert (HubConfig(data_dir=restored).media_dir / sha).read_bytes() == payload


async def test_a_damaged_backup_is_refused_and_changes_nothing(
    tmp_path: Path, another_database: str | None
) -> None:
    archive, _payload, sha, _seen = await _seeded_backup(tmp_path)
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member)
            assert data is not None
            body = bytearray(data.read())
            if member.name == f"media/{sha}":
                body[100] ^= 0xFF
            member.size = len(body)
            out.addfile(member, io.BytesIO(bytes(body)))
    target = tmp_path / "target"
    with pytest.raises(BackupError, match=f"media/{sha} is damaged"):
        restore_backup(damaged, target, database_url=another_database)
    assert not target.exists()
    leftovers = [name for name in os.listdir(tmp_path) if name.startswith(".restore-")]
    assert not leftovers, "the staging folder is cleaned up"

    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as out:
        body = json.dumps({"format": "something-else", "version": 1}).encode()
        info = tarfile.TarInfo("backup.json")
        info.size = len(body)
        out.addfile(info, io.BytesIO(body))
    with pytest.raises(BackupError, match="not a Loa hub backup"):
        restore_backup(foreign, target)


@pytest.mark.sqlite_only("compares the database file's bytes; PostgreSQL's case is below")
async def test_restore_never_silently_replaces_a_hub(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    archive, _payload, _sha, _seen = await _seeded_backup(tmp_path)
    live = tmp_path / "live"
    before = (live / "hub.sqlite3").read_bytes()
    assert main(["restore", "--from", str(archive), "--data", str(live)]) == 1
    assert "already holds a hub" in capsys.readouterr().err
    assert (live / "hub.sqlite3").read_bytes() == before
    # With --force the old one is moved aside, never deleted.
    assert main(["restore", "--from", str(archive), "--data", str(live), "--force"]) == 0
    [aside] = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("live.before-restore-")]
    assert (aside / "hub.sqlite3").read_bytes() == before


async def test_cli_backup_to_a_folder_keeps_the_newest(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    async with running_hub(tmp_path / "live") as hub:
        await hub.commune("00001")
        data = str(hub.config.data_dir)
        folder = tmp_path / "backups"
        for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
            (folder / f"loa-hub-{stamp}.tar").parent.mkdir(parents=True, exist_ok=True)
            (folder / f"loa-hub-{stamp}.tar").write_bytes(b"old")
        assert main(["backup", "--data", data, "--to-dir", str(folder), "--keep", "2"]) == 0
    out = capsys.readouterr()
    assert "backup: 100 %" in out.err and "backup written" in out.out
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 2 and kept[0] == "loa-hub-20260103T000000Z.tar"
    assert prune(folder, 1) == [folder / kept[0]]
    if database_for_tests() is None:
        nothing = ["--data", str(tmp_path / "nothing")]
        assert main(["backup", *nothing, "--to", str(folder / "x.tar")]) == 1
        assert "no hub database" in capsys.readouterr().err
    else:
        gone = ["--data", data, "--database", "postgresql://loa@127.0.0.1:1/gone"]
        assert main(["backup", *gone, "--to", str(folder / "x.tar")]) == 1
        assert "backup failed: pg_dump failed" in capsys.readouterr().err
    assert not (folder / "x.tar").exists()


def _backup_of(tmp_path: Path, database: str) -> Path:
    """A backup whose index says it holds `database` ("sqlite" or "postgresql")."""
    archive = tmp_path / f"{database}.tar"
    with tarfile.open(archive, "w") as out:
        body = json.dumps(
            {"format": "loa-hub-backup", "version": 1, "database": database, "files": []}
        ).encode()
        info = tarfile.TarInfo("backup.json")
        info.size = len(body)
        out.addfile(info, io.BytesIO(body))
    return archive


def test_a_backup_goes_back_only_into_its_own_kind_of_database(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with pytest.raises(BackupError, match=r"holds a PostgreSQL database.*--database"):
        restore_backup(_backup_of(tmp_path, "postgresql"), target)
    with pytest.raises(BackupError, match="holds a SQLite database; restore it without"):
        restore_backup(
            _backup_of(tmp_path, "sqlite"), target, database_url="postgresql://loa@127.0.0.1:1/x"
        )
    assert not target.exists()


async def test_restore_into_postgresql_keeps_the_current_database_aside(
    tmp_path: Path,
    capsys,
    another_database: str | None,  # type: ignore[no-untyped-def]
) -> None:
    if another_database is None:
        pytest.skip("PostgreSQL only: LOA_TEST_DATABASE=postgres")
    archive, _payload, _sha, _seen = await _seeded_backup(tmp_path)
    live = tmp_path / "live"
    async with running_hub(live) as hub:
        await hub.commune("00002")  # made after the backup: the restore takes it away
    url = database_for_tests()
    assert url is not None
    restore = ["restore", "--from", str(archive), "--data", str(live), "--database", url]
    assert main(restore) == 1
    assert "already holds a hub" in capsys.readouterr().err
    assert main([*restore, "--force"]) == 0
    err = capsys.readouterr().err
    assert "keeping the current database" in err and "pg_restore" in err
    [aside] = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("live.before-restore-")]
    assert (aside / "hub.pgdump").stat().st_size > 0 and (aside / "live").is_dir()
    async with running_hub(live) as hub:
        assert [c["code"] for c in await hub.call("GET", "/api/v1/communes")] == ["00001"]
