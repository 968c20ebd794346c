"""Accounts and sessions over the API: policy, forced change, expiry, lockout, idle, disable,
the last admin, every route refusing the anonymous, and the console's cookie/CSRF helpers."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub import web_session
from hub.appkeys import DB, ROUTES
from hub.cli import main
from hub.testing import FakeClock, HubHarness, running_hub

TEMP = "Temp-pass1!"
OWN = "Own-pass-2!"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path, clock=clock) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


async def login(hub: HubHarness, username: str, password: str, expect: int = 200) -> Any:
    return await hub.call(
        "POST",
        "/api/v1/auth/login",
        auth=False,
        expect=expect,
        json={"username": username, "password": password},
    )


def as_token(hub: HubHarness, token: str) -> HubHarness:
    other = HubHarness(hub.client, hub.config)
    other.token = token
    return other


async def actions(hub: HubHarness, **filters: str) -> list[str]:
    page = await hub.call("GET", "/api/v1/audit", params={"limit": "1000", **filters})
    return [e["action"] for e in page["items"]]


# ---------------------------------------------------------------- policy and forced change


@pytest.mark.parametrize(
    "password",
    ["Sh0rt!", "alllower1!", "ALLUPPER1!", "NoDigits!!", "NoSpecial12", "Xa-tan-1ab"],
)
async def test_password_policy_on_create(hub: HubHarness, password: str) -> None:
    body = await hub.call(
        "POST",
        "/api/v1/users",
        expect=422,
        json={"username": "xa-tan", "role": "viewer", "unit": "province", "password": password},
    )
    assert body["detail"][0]["field"] == "password"
    assert await hub.call("GET", "/api/v1/users/xa-tan", expect=404)


async def test_new_account_must_change_password_first(hub: HubHarness) -> None:
    await hub.call(
        "POST",
        "/api/v1/users",
        expect=201,
        json={"username": "lan", "role": "reviewer", "unit": None, "password": TEMP},
    )
    body = await login(hub, "lan", TEMP)
    assert body["must_change_password"] is True and body["unit"] == "province"
    lan = as_token(hub, body["token"])
    # Every route but password, me and logout answers 403 until the change.
    for spec in hub.app[ROUTES]:
        if spec.auth != "operator" or spec.during_password_change:
            continue
        url = re.sub(r"{(\w+)}", "x", spec.path)
        answer = await lan.call(spec.method, url, expect=403)
        assert answer["error"] == "password_change_required", spec.path
    assert (await lan.call("GET", "/api/v1/auth/me"))["must_change_password"] is True
    weak = await lan.call(
        "POST",
        "/api/v1/auth/password",
        json={"old_password": TEMP, "new_password": "weakweak"},
        expect=422,
    )
    assert weak["detail"][0]["field"] == "new_password"
    same = await lan.call(
        "POST",
        "/api/v1/auth/password",
        json={"old_password": TEMP, "new_password": TEMP},
        expect=422,
    )
    assert same["error"] == "password_reused"
    wrong = await lan.call(
        "POST",
        "/api/v1/auth/password",
        json={"old_password": "nope", "new_password": OWN},
        expect=403,
    )
    assert wrong["detail"][0]["field"] == "old_password"
    changed = await lan.call(
        "POST", "/api/v1/auth/password", json={"old_password": TEMP, "new_password": OWN}
    )
    assert changed["must_change_password"] is False
    # The change ended the old session; the answer carries a fresh one.
    await lan.call("GET", "/api/v1/auth/me", expect=401)
    fresh = as_token(hub, changed["token"])
    await fresh.call("GET", "/api/v1/bulletins")
    assert "user.password_change" in await actions(hub, object="lan")


async def test_password_history_refuses_last_n(hub: HubHarness) -> None:
    await hub.call(
        "POST",
        "/api/v1/users",
        expect=201,
        json={"username": "minh", "role": "viewer", "unit": "province", "password": TEMP},
    )
    token = (await login(hub, "minh", TEMP))["token"]
    current = TEMP
    for i in range(4):
        new = f"Next-pass-{i}!"
        token = (
            await as_token(hub, token).call(
                "POST",
                "/api/v1/auth/password",
                json={"old_password": current, "new_password": new},
            )
        )["token"]
        current = new
    # Five remembered (the default): the first temporary one is still among them.
    reused = await as_token(hub, token).call(
        "POST",
        "/api/v1/auth/password",
        json={"old_password": current, "new_password": TEMP},
        expect=422,
    )
    assert reused["error"] == "password_reused"


async def test_password_expires_after_max_age(hub: HubHarness, clock: FakeClock) -> None:
    viewer = await hub.user("hoa", "viewer", "province")
    await viewer.call("GET", "/api/v1/bulletins")
    clock.advance(timedelta(days=183))
    body = await login(hub, "hoa", OWN)
    assert body["must_change_password"] is True and body["password_expired"] is True
    stale = as_token(hub, body["token"])
    await stale.call("GET", "/api/v1/bulletins", expect=403)
    again = await stale.call(
        "POST", "/api/v1/auth/password", json={"old_password": OWN, "new_password": "Brand-new-3!"}
    )
    assert again["password_expired"] is False
    await as_token(hub, again["token"]).call("GET", "/api/v1/bulletins")


async def test_an_admin_cannot_reset_its_own_password(hub: HubHarness) -> None:
    me = (await hub.call("GET", "/api/v1/auth/me"))["username"]
    before = await hub.call("GET", f"/api/v1/users/{me}")
    refused = await hub.call(
        "POST", f"/api/v1/users/{me}/password", json={"password": "Reset-pass-9!"}, expect=403
    )
    assert refused["error"] == "own_account"
    assert await hub.call("GET", f"/api/v1/users/{me}") == before  # nothing changed
    await hub.call("GET", "/api/v1/bulletins")  # and the session still works


async def test_admin_reset_forces_change_and_ends_sessions(hub: HubHarness) -> None:
    viewer = await hub.user("tuan", "viewer", "province")
    await hub.call("POST", "/api/v1/users/tuan/password", json={"password": "Reset-pass-9!"})
    await viewer.call("GET", "/api/v1/bulletins", expect=401)
    body = await login(hub, "tuan", "Reset-pass-9!")
    assert body["must_change_password"] is True
    assert "user.password_reset" in await actions(hub, object="tuan")


# ---------------------------------------------------------------- lockout, lock, disable


async def test_five_failures_lock_for_fifteen_minutes(hub: HubHarness, clock: FakeClock) -> None:
    await hub.user("binh", "viewer", "province")
    for _ in range(5):
        body = await login(hub, "binh", "Wrong-pass-1!", expect=401)
        assert body["error"] == "invalid_credentials"
    # Locked now: the right password gets the very answer a wrong name gets.
    locked = await login(hub, "binh", OWN, expect=401)
    unknown = await login(hub, "khong-co-ai", OWN, expect=401)
    assert locked == unknown and locked["error"] == "invalid_credentials"
    assert "15 minutes" in locked["detail"]
    clock.advance(timedelta(minutes=14))
    await login(hub, "binh", OWN, expect=401)
    clock.advance(timedelta(minutes=2))
    await login(hub, "binh", OWN)
    got = await actions(hub, object="binh")
    assert got.count("auth.login_failed") == 5
    assert "auth.lockout" in got and "auth.login_refused" in got and "auth.login" in got
    only_lockouts = await actions(hub, action="auth.lockout")
    assert only_lockouts == ["auth.lockout"]


async def test_admin_unlock_clears_lockout(hub: HubHarness) -> None:
    await hub.user("chi", "viewer", "province")
    for _ in range(5):
        await login(hub, "chi", "Wrong-pass-1!", expect=401)
    assert (await hub.call("GET", "/api/v1/users/chi"))["locked_until"] is not None
    unlocked = await hub.call("POST", "/api/v1/users/chi/unlock")
    assert unlocked["locked_until"] is None and unlocked["locked"] is False
    await login(hub, "chi", OWN)


async def test_admin_lock_and_disable_end_sessions(hub: HubHarness) -> None:
    viewer = await hub.user("dung", "viewer", "province")
    locked = await hub.call("POST", "/api/v1/users/dung/lock")
    assert locked["locked"] is True
    await viewer.call("GET", "/api/v1/bulletins", expect=401)
    assert (await login(hub, "dung", OWN, expect=401))["error"] == "invalid_credentials"
    await hub.call("POST", "/api/v1/users/dung/unlock")
    viewer = as_token(hub, (await login(hub, "dung", OWN))["token"])
    await viewer.call("GET", "/api/v1/bulletins")
    disabled = await hub.call("POST", "/api/v1/users/dung/disable")
    assert disabled["disabled"] is True
    await viewer.call("GET", "/api/v1/bulletins", expect=401)
    assert (await login(hub, "dung", OWN, expect=401))["error"] == "invalid_credentials"
    await hub.call("POST", "/api/v1/users/dung/unlock", expect=409)
    entries = (await hub.call("GET", "/api/v1/audit", params={"action": "user.disable"}))["items"]
    assert entries[0]["before"]["disabled"] is False and entries[0]["after"]["disabled"] is True
    assert entries[0]["actor"] == "admin" and entries[0]["unit"] == "province"


async def test_at_least_one_admin_stays_enabled(hub: HubHarness) -> None:
    body = await hub.call("POST", "/api/v1/users/admin/disable", expect=409)
    assert body["error"] == "last_admin"
    await hub.call("POST", "/api/v1/users/admin/lock", expect=409)
    second = await hub.user("nguyen.van.a", "admin")
    await second.call("POST", "/api/v1/users/admin/disable")
    await second.call("POST", "/api/v1/users/nguyen.van.a/lock", expect=409)


async def test_admin_accounts_are_personal(hub: HubHarness) -> None:
    body = await hub.call(
        "POST",
        "/api/v1/users",
        expect=422,
        json={"username": "quantri", "role": "admin", "password": TEMP},
    )
    assert body["error"] == "shared_account"
    await hub.call(
        "POST",
        "/api/v1/users",
        expect=409,
        json={"username": "admin", "role": "viewer", "unit": "province", "password": TEMP},
    )


@pytest.mark.parametrize(
    ("role", "unit"),
    [
        ("commune_operator", None),
        ("commune_operator", "99999"),
        ("reviewer", "00001"),
        ("contributor", None),
        ("contributor", "bad unit"),
    ],
)
async def test_role_and_unit_must_fit(hub: HubHarness, role: str, unit: str | None) -> None:
    body = await hub.call(
        "POST",
        "/api/v1/users",
        expect=422,
        json={"username": "someone", "role": role, "unit": unit, "password": TEMP},
    )
    assert body["detail"][0]["field"] == "unit"


async def test_only_admins_manage_accounts(hub: HubHarness) -> None:
    reviewer = await hub.user("ha", "reviewer")
    for method, path in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users/admin/lock"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/audit.csv"),
    ]:
        body = await reviewer.call(method, path, expect=403)
        assert body["error"] == "forbidden"
    await reviewer.call(
        "POST",
        "/api/v1/users",
        expect=403,
        json={"username": "x1", "role": "admin", "password": TEMP},
    )
    assert (await hub.call("GET", "/api/v1/users/admin"))["locked"] is False


# ---------------------------------------------------------------- sessions


async def test_idle_session_expires_by_the_clock(hub: HubHarness, clock: FakeClock) -> None:
    viewer = await hub.user("khanh", "viewer", "province")
    clock.advance(timedelta(minutes=29))
    await viewer.call("GET", "/api/v1/bulletins")  # use resets the idle timer
    clock.advance(timedelta(minutes=29))
    await viewer.call("GET", "/api/v1/bulletins")
    clock.advance(timedelta(minutes=31))
    body = await viewer.call("GET", "/api/v1/bulletins", expect=401)
    assert body["error"] == "unauthorized"


async def test_logout_is_audited(hub: HubHarness) -> None:
    viewer = await hub.user("long", "viewer", "province")
    await viewer.call("POST", "/api/v1/auth/logout")
    await viewer.call("GET", "/api/v1/bulletins", expect=401)
    assert "auth.logout" in await actions(hub, actor="long")


async def test_every_route_refuses_the_anonymous(hub: HubHarness) -> None:
    public = {
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/auth/login",
        "/api/v1/enroll",
        "/api/v1/cap/feed.atom",  # what loudspeakers air in public, for other systems
        "/api/v1/exchange/keys",  # public keys, for lower hubs to pin
    }
    kinds: dict[str, int] = {}
    for spec in hub.app[ROUTES]:
        kinds[spec.auth] = kinds.get(spec.auth, 0) + 1
        if spec.auth == "public":
            assert spec.path in public, f"{spec.path} is public but should not be"
            continue
        url = re.sub(r"{(\w+)}", "x", spec.path)
        body = await hub.call(spec.method, url, auth=False, expect=401)
        assert body["error"] == "unauthorized", spec.path
        if spec.auth == "device":
            # An operator's token opens no device endpoint.
            await hub.call(spec.method, url, expect=401)
    assert kinds["device"] >= 4 and kinds["operator"] >= 30
    assert await hub.call("GET", "/healthz", auth=False) == {"ok": True}
    doc = await hub.call("GET", "/api/v1/openapi.json", auth=False)
    for spec in hub.app[ROUTES]:
        assert spec.method.lower() in doc["paths"][spec.path], spec.path


# ---------------------------------------------------------------- the console's helpers


def _console(app: web.Application) -> None:
    """A stand-in for the console pages, using only the helpers."""

    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=web_session.csrf_token(request))

    async def login_post(request: web.Request) -> web.Response:
        form = await request.post()
        web_session.check_csrf(request, form)
        response = web.Response(text="ok")
        await web_session.start_session(
            request, response, str(form["username"]), str(form["password"])
        )
        return response

    async def home(request: web.Request) -> web.Response:
        user = await web_session.page_user(request)
        return web.Response(text=f"{user.username} {web_session.csrf_token(request)}")

    async def act(request: web.Request) -> web.Response:
        await web_session.page_user(request)
        web_session.check_csrf(request, await request.post())
        return web.Response(text="done")

    async def logout(request: web.Request) -> web.StreamResponse:
        await web_session.page_user(request)
        web_session.check_csrf(request, await request.post())
        response = web.HTTPFound("/login")
        await web_session.end_session(request, response)
        raise response

    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/", home)
    app.router.add_post("/act", act)
    app.router.add_post("/logout", logout)


async def test_cookie_session_and_csrf(tmp_path: Path, clock: FakeClock) -> None:
    from hub.app import create_app
    from hub.auth import Role, create_user
    from hub.db import open_database
    from hub.testing import hub_config

    config = hub_config(tmp_path, scrypt_n=2**4)
    db = await open_database(config.database_url, config.db_path)
    await create_user(db, "an", OWN, Role.VIEWER, "province", scrypt_n=2**4, now=clock())
    await db.close()
    app = create_app(config, clock=clock, with_console=False)
    _console(app)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        anonymous = await client.get("/", allow_redirects=False)
        assert anonymous.status == 302 and anonymous.headers["Location"].startswith("/login?next=")
        page = await client.get("/login")
        pre = await page.text()
        cookie = page.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        forged = await client.post("/login", data={"username": "an", "password": OWN, "csrf": "x"})
        assert forged.status == 403 and (await forged.json())["error"] == "csrf"
        ok = await client.post("/login", data={"username": "an", "password": OWN, "csrf": pre})
        assert ok.status == 200
        session_cookie = ok.cookies[web_session.COOKIE]
        assert session_cookie["httponly"] and session_cookie["samesite"] == "Strict"
        home = await client.get("/")
        name, token = (await home.text()).split()
        assert name == "an" and token != pre
        assert (await client.post("/act", data={})).status == 403
        assert (await client.post("/act", data={"csrf": token})).status == 200
        # The cookie never opens the JSON API.
        assert (await client.get("/api/v1/bulletins")).status == 401
        clock.advance(timedelta(minutes=31))
        expired = await client.get("/", allow_redirects=False)
        assert expired.status == 302
        page = await client.get("/login")
        pre = await page.text()
        await client.post("/login", data={"username": "an", "password": OWN, "csrf": pre})
        token = (await (await client.get("/")).text()).split()[1]
        out = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert out.status == 302
        assert (await client.get("/", allow_redirects=False)).status == 302
        rows = await app[DB].fetchall("SELECT action FROM audit WHERE actor = 'an'")
        assert [r[0] for r in rows] == ["auth.login", "auth.login", "auth.logout"]
    finally:
        await client.close()


# ---------------------------------------------------------------- command line


async def test_cli_account_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str, stdin: str = "") -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        main([*argv, "--data", str(tmp_path)])

    await asyncio.to_thread(run, "user", "add", "chief", "--password-stdin", stdin=f"{OWN}\n")
    with pytest.raises(SystemExit, match="personal"):
        await asyncio.to_thread(run, "user", "add", "admin", "--password-stdin", stdin=f"{OWN}\n")
    with pytest.raises(SystemExit, match="password"):
        await asyncio.to_thread(
            run, "user", "add", "deputy", "--password-stdin", stdin="weakpass\n"
        )
    with pytest.raises(SystemExit, match="at least one admin"):
        await asyncio.to_thread(run, "user", "disable", "chief")
    with pytest.raises(SystemExit, match="at least one admin"):
        await asyncio.to_thread(run, "user", "lock", "chief")
    await asyncio.to_thread(
        run,
        "user",
        "add",
        "kt.son",
        "--role",
        "technician",
        "--unit",
        "province",
        "--must-change",
        "--password-stdin",
        stdin=f"{OWN}\n",
    )
    await asyncio.to_thread(run, "user", "lock", "kt.son")
    await asyncio.to_thread(run, "user", "unlock", "kt.son")
    await asyncio.to_thread(
        run, "user", "reset-password", "chief", "--password-stdin", stdin="Recover-ed-1!\n"
    )
    await asyncio.to_thread(run, "user", "list")
    assert "chief\tadmin\tprovince\tmust-change" in capsys.readouterr().out
    async with running_hub(tmp_path) as hub:
        body = await login(hub, "chief", "Recover-ed-1!")
        assert body["must_change_password"] is True
        got = await actions(hub, object="chief")
        assert {"user.create", "user.password_reset"} <= set(got)
        got = await actions(hub, object="kt.son")
        assert {"user.create", "user.lock", "user.unlock"} <= set(got)
        assert (await login(hub, "kt.son", OWN))["must_change_password"] is True
