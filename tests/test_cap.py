"""CAP 1.2 in and out (hub/cap.py, hub/domain/cap.py, hub/outbound.py, hub/cap_feeds.py),
against a real hub on 127.0.0.1 with real SQLite, and real HTTP servers for the resources
and feeds the hub fetches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.appkeys import DB
from hub.cap import add_sender
from hub.cap_feeds import poll
from hub.cli import main as hub_main
from hub.domain import cap as capdef
from hub.outbound import Outbound, OutboundRefused, OutboundUnavailable, address_allowed
from hub.store import cap as cap_store
from hub.testing import HubHarness, running_hub
from tests.cap_samples import alert, area, info, when
from tests.real_files import wav_bytes

WAV = wav_bytes()  # a real recording: the hub decodes what it keeps
CAP = {"Content-Type": "application/cap+xml"}
LOOPBACK = ("127.0.0.1/32",)


@asynccontextmanager
async def cap_hub(tmp_path: Path, **kw: Any) -> AsyncIterator[HubHarness]:
    settings: dict[str, Any] = {
        "province_name": "Hải Phòng",
        "province_code": "31",
        "outbound_allowed_networks": LOOPBACK,
        **kw,
    }
    async with running_hub(tmp_path / "hub", **settings) as hub:
        await hub.commune("00001", name="Xã An Lư", admin_code="11311")
        await hub.commune("00002", name="Xã Thủy Triều", admin_code="11314")
        yield hub


async def post(hub: HubHarness, body: bytes, expect: int = 201, **kw: Any) -> Any:
    headers = {**CAP, **kw.pop("headers", {})}
    return await hub.call("POST", "/api/v1/cap", data=body, headers=headers, expect=expect, **kw)


@asynccontextmanager
async def web_server(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


# ---------------------------------------------------------------- the validator


def _root(body: bytes) -> ET.Element:
    root: ET.Element = SafeET.fromstring(body)
    return root


def _problems(body: bytes) -> dict[str, str]:
    return {p.element: p.message for p in capdef.validate(_root(body))}


def test_a_full_alert_passes_and_reads() -> None:
    body = alert("A1", info(areas=area("Xã An Lư", "11311"), expires=when(timedelta(hours=2))))
    assert capdef.validate(_root(body)) == []
    read = capdef.read_alert(_root(body))
    assert read.identifier == "A1" and read.msg_type == "Alert"
    assert read.infos[0].areas[0].geocodes[0] == capdef.Pair("VN-DVHC", "11311")
    assert read.infos[0].expires is not None and read.infos[0].expires.utcoffset()


@pytest.mark.parametrize(
    ("body", "element", "says"),
    [
        (alert("has space", info()), "alert/identifier", "spaces"),
        (alert("A", info(), sent="2026-07-01T10:00:00Z"), "alert/sent", "zone"),
        (alert("A", info(), sent="2026-07-01T10:00:00"), "alert/sent", "zone"),
        (alert("A", info(), sent="2026-13-01T10:00:00+07:00"), "alert/sent", "dateTime"),
        (alert("A", info(), status="Real"), "alert/status", "not one of"),
        (alert("A", info(), msg_type="Warn"), "alert/msgType", "not one of"),
        (alert("A", info(urgency="Now")), "alert/info[1]/urgency", "not one of"),
        (alert("A", info(severity="")), "alert/info[1]/severity", "empty"),
        (alert("A", info(), scope="Restricted"), "alert/restriction", "Restricted"),
        (alert("A", info(), references="only-two,parts"), "alert/references", "sender,identifier"),
    ],
)
def test_the_validator_names_the_element(body: bytes, element: str, says: str) -> None:
    problems = _problems(body)
    assert element in problems, problems
    assert says in problems[element]


def test_required_order_namespace_and_unknown_elements() -> None:
    ns = 'xmlns="urn:oasis:names:tc:emergency:cap:1.2"'
    missing = f"<alert {ns}><identifier>A</identifier></alert>".encode()
    problems = _problems(missing)
    for name in ("sender", "sent", "status", "msgType", "scope"):
        assert problems[f"alert/{name}"] == "is required"
    swapped = (
        alert("A", info())
        .replace(b"<status>Actual</status>", b"")
        .replace(b"<scope>Public</scope>", b"<scope>Public</scope><status>Actual</status>")
    )
    assert "out of order" in _problems(swapped)["alert/status"]
    extra = alert("A", info()).replace(b"<scope>", b"<colour>red</colour><scope>")
    assert "not a CAP 1.2 element" in _problems(extra)["alert/colour"]
    wrong_ns = alert("A", info()).replace(b"cap:1.2", b"cap:1.1")
    assert "namespace" in _problems(wrong_ns)["alert"]
    resource = (
        "<resource><resourceDesc>x</resourceDesc><mimeType>audio/wav</mimeType>"
        "<digest>abc</digest></resource>"
    )
    bad_digest = alert("A", info(resources=resource))
    assert "SHA-1" in _problems(bad_digest)["alert/info[1]/resource[1]/digest"]
    polygon = "<area><areaDesc>x</areaDesc><polygon>1,1 2,2 3,3 4,4</polygon></area>"
    assert (
        "first and last"
        in _problems(alert("A", info(areas=polygon)))["alert/info[1]/area[1]/polygon[1]"]
    )


def test_preferred_info_and_the_priority_table() -> None:
    en = info(language="en-US", headline="Flash flood")
    vi = info(language="vi", headline="Lũ quét")
    read = capdef.read_alert(_root(alert("A", en, vi)))
    chosen = capdef.preferred_info(read.infos)
    assert chosen is not None and chosen.headline == "Lũ quét"
    only_en = capdef.read_alert(_root(alert("A", en)))
    first = capdef.preferred_info(only_en.infos)
    assert first is not None and first.headline == "Flash flood"
    table = {
        (u, s): (capdef.is_emergency(i), capdef.is_priority(i))
        for u in capdef.URGENCY
        for s in capdef.SEVERITY
        for i in capdef.read_alert(_root(alert("A", info(urgency=u, severity=s)))).infos
    }
    for (u, s), (emergency, priority) in table.items():
        assert emergency == (u in ("Immediate", "Expected") and s in ("Extreme", "Severe"))
        if s in ("Extreme", "Severe"):
            assert priority
        if s in ("Minor", "Unknown"):
            assert not priority


# ---------------------------------------------------------------- outbound fetches


def test_addresses_that_are_not_public_are_refused_unless_allowed() -> None:
    import ipaddress

    for private in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "::1", "fc00::1"):
        assert not address_allowed(private, ())
    assert not address_allowed("::ffff:127.0.0.1", ())
    assert address_allowed("8.8.8.8", ())
    assert address_allowed("10.1.2.3", (ipaddress.ip_network("10.0.0.0/8"),))


async def test_outbound_refuses_schemes_internal_names_and_redirects_to_them() -> None:
    strict = Outbound(allowed=(), timeout_s=5, attempts=1, max_bytes=1000)
    for url in ("file:///etc/passwd", "ftp://example.com/x", "http://127.0.0.1:1/x"):
        with pytest.raises(OutboundRefused):
            await strict.fetch(url)
    app = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:1/secret")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    async with web_server(app) as server:
        # A name (not a literal) that resolves to loopback is refused at connection time.
        with pytest.raises(OutboundRefused, match="not a public address"):
            await strict.fetch(f"http://localhost:{server.port}/big")
        loopback = Outbound(
            allowed=tuple(capdef_networks(LOOPBACK)), timeout_s=5, attempts=1, max_bytes=1000
        )
        with pytest.raises(OutboundRefused, match="more than 1000"):
            await loopback.fetch(str(server.make_url("/big")))
        only_server = Outbound(
            allowed=tuple(capdef_networks(("127.0.0.1/32",))),
            timeout_s=5,
            attempts=1,
            max_bytes=10_000,
        )
        # The redirect's target is checked too (here: allowed, but nothing listens).
        with pytest.raises(OutboundUnavailable):
            await only_server.fetch(str(server.make_url("/redirect")))


def capdef_networks(values: tuple[str, ...]) -> list[Any]:
    import ipaddress

    return [ipaddress.ip_network(v) for v in values]


async def test_outbound_retries_a_failing_server_then_succeeds() -> None:
    calls = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) < 3:
            return web.Response(status=503)
        return web.Response(body=b"ok")

    app = web.Application()
    app.router.add_get("/feed", flaky)
    async with web_server(app) as server:
        fetcher = Outbound(
            allowed=tuple(capdef_networks(LOOPBACK)),
            timeout_s=5,
            attempts=3,
            max_bytes=100,
            backoff_s=0.01,
        )
        fetched = await fetcher.fetch(str(server.make_url("/feed")))
    assert fetched.body == b"ok" and len(calls) == 3


# ---------------------------------------------------------------- CAP in


async def test_an_emergency_airs_at_once_and_the_same_alert_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    async with cap_hub(tmp_path) as hub:
        device = await hub.new_device("00001", "speaker")
        body = alert(
            "KTTV-1",
            info(areas=area("vùng ven sông", "11311"), expires=when(timedelta(hours=3))),
        )
        async with device.socket() as sock:
            taken = await post(hub, body)
            command = await sock.command()
            while command.type == "manifest_ready":  # a connection's first word
                command = await sock.command()
        assert taken["outcome"] == "published" and taken["new"] is True
        bulletin = taken["bulletin"]
        assert bulletin["priority"] == "emergency" and bulletin["state"] == "published"
        assert bulletin["targets"]["communes"] == ["00001"]
        assert bulletin["title"] == "Cảnh báo lũ quét"
        assert "di chuyển lên vùng cao" in bulletin["text"]
        assert bulletin["category"] == "disaster_emergency"
        assert command.type == "emergency_start"
        again = await post(hub, body, expect=200)
        assert again["new"] is False and again["bulletin"]["id"] == bulletin["id"]
        listed = await hub.call("GET", "/api/v1/bulletins")
        assert len(listed) == 1
        audit = (await hub.call("GET", "/api/v1/audit", params={"action": "cap.take"}))["items"]
        assert len(audit) == 1 and audit[0]["actor"] == "admin"


async def test_areas_by_name_by_province_and_none(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        by_name = await post(
            hub,
            alert("N1", info(severity="Moderate", urgency="Future", areas=area("xã  THỦY triều"))),
        )
        assert by_name["outcome"] == "review"
        assert by_name["bulletin"]["state"] == "submitted"
        assert by_name["bulletin"]["priority"] == "normal"
        assert by_name["bulletin"]["targets"]["communes"] == ["00002"]
        province = await post(hub, alert("P1", info(areas=area("Hải Phòng"))))
        assert province["bulletin"]["targets"]["all_communes"] is True
        by_code = await post(
            hub, alert("P2", info(severity="Severe", urgency="Future", areas=area("x", "31")))
        )
        assert by_code["bulletin"]["priority"] == "priority"
        assert by_code["bulletin"]["targets"]["communes"] == ["00001", "00002"]
        nowhere = await post(hub, alert("X1", info(areas=area("Hà Nội", "01"))), expect=422)
        assert nowhere["detail"][0]["field"] == "alert/info[1]/area"
        no_area = await post(hub, alert("X2", info()), expect=422)
        assert no_area["detail"][0]["field"] == "alert/info[1]/area"
        assert len(await hub.call("GET", "/api/v1/bulletins")) == 3


async def test_vietnamese_info_is_preferred_and_expiry_is_checked(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        en = info(language="en-US", headline="Flash flood", areas=area("Xã An Lư"))
        vi = info(language="vi-VN", headline="Lũ quét", areas=area("Xã An Lư"))
        taken = await post(hub, alert("L1", en, vi))
        assert taken["bulletin"]["title"] == "Lũ quét"
        expired = info(expires=when(-timedelta(minutes=1)), areas=area("Xã An Lư"))
        refused = await post(hub, alert("L2", expired), expect=422)
        assert refused["detail"][0]["field"] == "alert/info[1]/expires"
        until = when(timedelta(hours=5))
        later = await post(hub, alert("L3", info(expires=until, areas=area("Xã An Lư"))))
        stored = later["bulletin"]["schedule"]["valid_until"]
        assert capdef.parse_datetime(stored) == capdef.parse_datetime(until)


async def test_update_replaces_and_cancel_withdraws(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        sent = when()
        first = await post(hub, alert("U1", info(areas=area("Xã An Lư")), sent=sent))
        ref = f"kttv@example.gov.vn,U1,{sent}"
        update = await post(
            hub,
            alert(
                "U2",
                info(headline="Lũ quét lan rộng", areas=area("Xã An Lư") + area("Xã Thủy Triều")),
                msg_type="Update",
                references=ref,
            ),
        )
        assert update["withdrawn"] == [first["bulletin"]["id"]]
        old = await hub.call("GET", f"/api/v1/bulletins/{first['bulletin']['id']}")
        assert old["state"] == "cancelled"
        assert update["bulletin"]["targets"]["communes"] == ["00001", "00002"]
        review = await post(
            hub, alert("U3", info(urgency="Future", severity="Minor", areas=area("Xã An Lư")))
        )
        cancel = await post(
            hub,
            alert(
                "U4",
                msg_type="Cancel",
                references=f"kttv@example.gov.vn,U2,{update['sent']}"
                f" kttv@example.gov.vn,U3,{review['sent']}",
            ),
        )
        assert cancel["outcome"] == "cancelled" and cancel["bulletin"] is None
        assert set(cancel["withdrawn"]) == {update["bulletin"]["id"], review["bulletin"]["id"]}
        states = {b["id"]: b["state"] for b in await hub.call("GET", "/api/v1/bulletins")}
        assert states[update["bulletin"]["id"]] == "cancelled"
        assert states[review["bulletin"]["id"]] == "returned"
        unknown = await post(
            hub,
            alert("U5", msg_type="Cancel", references=f"kttv@example.gov.vn,nope,{sent}"),
            expect=422,
        )
        assert unknown["detail"][0]["field"] == "alert/references"


async def test_tests_exercises_and_private_alerts_never_air(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        test = await post(hub, alert("T1", info(areas=area("Xã An Lư")), status="Test"))
        assert test["outcome"] == "not_aired" and test["bulletin"] is None
        assert "Actual" in test["reason"]
        private = await post(
            hub, alert("T2", info(areas=area("Xã An Lư")), scope="Private"), expect=422
        )
        assert private["detail"][0]["field"] == "alert/addresses"
        assert await hub.call("GET", "/api/v1/bulletins") == []


async def test_untrusted_xml_is_refused_before_anything(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        secret = tmp_path / "secret.txt"
        secret.write_text("do not read")
        xxe = (
            f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file://{secret}">]>'
            '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier>'
            "</alert>"
        ).encode()
        refused = await post(hub, xxe, expect=400)
        assert refused["error"] == "xml_forbidden"
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<alert>&b;</alert>"
        )
        assert (await post(hub, bomb, expect=400))["error"] == "xml_forbidden"
        assert (await post(hub, b"<alert><unclosed>", expect=400))["error"] == "bad_xml"
        wrong_type = await post(
            hub, alert("A", info()), headers={"Content-Type": "text/plain"}, expect=415
        )
        assert wrong_type["error"] == "unsupported_media_type"
        invalid = await post(hub, alert("A", info(urgency="Soon")), expect=422)
        assert invalid["error"] == "cap_invalid"
        assert invalid["detail"][0]["field"] == "alert/info[1]/urgency"
        too_big = await post(hub, b"<a>" + b"x" * (1024 * 1024) + b"</a>", expect=413)
        assert too_big["error"] == "too_large"
        assert await hub.call("GET", "/api/v1/bulletins") == []


async def test_who_may_post(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        contributor = await hub.user("so.ytet", "contributor", "soyte")
        await post(contributor, alert("W1", info(areas=area("Xã An Lư"))), expect=403)
        operator = await hub.user("xa.anlu", "commune_operator", "00001")
        await post(operator, alert("W2", info(areas=area("Xã An Lư"))), expect=403)
        resp = await hub.client.post("/api/v1/cap", data=alert("W3", info()), headers=CAP)
        assert resp.status == 401
        reviewer = await hub.user("tham.dinh", "reviewer")
        central = await post(
            reviewer,
            alert("W4", info(areas=area("Xã An Lư"))),
            params={"source_level": "central"},
        )
        assert central["bulletin"]["source_level"] == "central"


async def test_sender_accounts_act_by_their_policy(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        db = hub.app[DB]
        auto = await add_sender(db, "kttv", "auto", "central", now=_now())
        review = await add_sender(db, "dthuy", "review", "province", now=_now())
        as_auto = {"Authorization": f"Bearer {auto}"}
        as_review = {"Authorization": f"Bearer {review}"}
        published = await post(
            hub, alert("S1", info(areas=area("Xã An Lư"))), headers=as_auto, auth=False
        )
        assert published["outcome"] == "published"
        assert published["bulletin"]["source_level"] == "central"
        assert published["bulletin"]["created_by"] == "sender:kttv"
        held = await post(
            hub,
            alert("S2", info(areas=area("Xã An Lư")), sender="dthuy@example.gov.vn"),
            headers=as_review,
            auth=False,
        )
        assert held["outcome"] == "review" and held["bulletin"]["state"] == "submitted"
        assert held["bulletin"]["priority"] == "emergency"
        # The reviewer approves it like any submitted bulletin: it airs now.
        approved = await hub.call(
            "POST", f"/api/v1/bulletins/{held['bulletin']['id']}/approve", json={}
        )
        assert approved["state"] == "published"
        # One sender cannot cancel another's alert.
        stolen = await post(
            hub,
            alert(
                "S3",
                msg_type="Cancel",
                references=f"kttv@example.gov.vn,S1,{published['sent']}",
                sender="dthuy@example.gov.vn",
            ),
            headers=as_review,
            auth=False,
            expect=403,
        )
        assert stolen["detail"][0]["field"] == "alert/references"
        wrong_level = await post(
            hub,
            alert("S4", info(areas=area("Xã An Lư"))),
            headers=as_auto,
            auth=False,
            params={"source_level": "province"},
            expect=422,
        )
        assert wrong_level["detail"][0]["field"] == "source_level"
        audit = (await hub.call("GET", "/api/v1/audit", params={"action": "cap.take"}))["items"]
        assert {a["actor"] for a in audit} == {"sender:kttv", "sender:dthuy"}


def _now() -> Any:
    from loa_contract import utcnow

    return utcnow()


async def test_audio_resources_by_uri_and_deref_with_their_digest(tmp_path: Path) -> None:
    served = web.Application()

    async def audio(request: web.Request) -> web.Response:
        return web.Response(body=WAV, content_type="audio/wav")

    served.router.add_get("/lu.wav", audio)
    digest = hashlib.sha1(WAV).hexdigest()
    async with cap_hub(tmp_path) as hub, web_server(served) as server:
        url = str(server.make_url("/lu.wav"))

        def resource(extra: str) -> str:
            return (
                "<resource><resourceDesc>Bản tin</resourceDesc><mimeType>audio/wav</mimeType>"
                f"{extra}</resource>"
            )

        by_uri = await post(
            hub,
            alert(
                "R1",
                info(
                    resources=resource(f"<uri>{url}</uri><digest>{digest}</digest>"),
                    areas=area("Xã An Lư"),
                ),
            ),
        )
        assert by_uri["bulletin"]["kind"] == "audio"
        assert by_uri["bulletin"]["media"]["sha256"] == hashlib.sha256(WAV).hexdigest()
        encoded = base64.b64encode(WAV).decode()
        by_deref = await post(
            hub,
            alert(
                "R2",
                info(
                    resources=resource(f"<derefUri>{encoded}</derefUri><digest>{digest}</digest>"),
                    areas=area("Xã An Lư"),
                ),
            ),
        )
        assert by_deref["bulletin"]["media"] == by_uri["bulletin"]["media"]
        wrong = await post(
            hub,
            alert(
                "R3",
                info(
                    resources=resource(f"<uri>{url}</uri><digest>{'0' * 40}</digest>"),
                    areas=area("Xã An Lư"),
                ),
            ),
            expect=422,
        )
        assert wrong["detail"][0]["field"] == "alert/info[1]/resource[1]/digest"
        local_file = await post(
            hub,
            alert(
                "R4",
                info(resources=resource("<uri>file:///etc/passwd</uri>"), areas=area("Xã An Lư")),
            ),
            expect=422,
        )
        assert local_file["detail"][0]["field"] == "alert/info[1]/resource[1]/uri"
    async with running_hub(tmp_path / "strict", province_name="Hải Phòng") as strict:
        # Its own code: on PostgreSQL both hubs of this test share the test's database.
        await strict.commune("00003", name="Xã An Lư")
        internal = await post(
            strict,
            alert(
                "R5",
                info(
                    resources="<resource><resourceDesc>x</resourceDesc>"
                    "<mimeType>audio/wav</mimeType><uri>http://127.0.0.1:9/x.wav</uri></resource>",
                    areas=area("Xã An Lư"),
                ),
            ),
            expect=422,
        )
        assert "public" in internal["detail"][0]["message"]


# ---------------------------------------------------------------- feeds


async def cli(*args: str) -> int:
    """`hub ...` as typed at the server's console (its own event loop, off this one)."""
    return await asyncio.to_thread(hub_main, list(args))


async def test_a_cap_in_atom_feed_is_polled_once_per_entry(tmp_path: Path) -> None:
    linked = alert("F2", info(areas=area("Xã Thủy Triều")), sender="kttv@example.gov.vn")
    inline = alert("F1", info(areas=area("Xã An Lư"))).split(b"?>", 1)[1].decode()
    served = web.Application()

    async def feed(request: web.Request) -> web.Response:
        atom = (
            '<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:kttv</id><title>KTTV</title>'
            "<updated>2026-07-01T00:00:00+07:00</updated>"
            "<entry><id>F1</id><updated>2026-07-01T00:00:00+07:00</updated>"
            f'<content type="application/cap+xml">{inline}</content></entry>'
            "<entry><id>F2</id><updated>2026-07-01T00:00:00+07:00</updated>"
            f'<link type="application/cap+xml" href="{request.url.with_path("/f2.xml")}"/>'
            "</entry></feed>"
        )
        return web.Response(text=atom, content_type="application/atom+xml")

    async def f2(request: web.Request) -> web.Response:
        return web.Response(body=linked, content_type="application/cap+xml")

    served.router.add_get("/feed.atom", feed)
    served.router.add_get("/f2.xml", f2)
    async with cap_hub(tmp_path) as hub, web_server(served) as server:
        data = hub.config.data_dir
        url = str(server.make_url("/feed.atom"))
        assert await cli("sender", "add", "kttv", "--policy", "auto", "--data", str(data)) == 0
        added = await cli(
            "cap-feed", "add", url, "--sender", "kttv", "--every", "60", "--data", str(data)
        )
        assert added == 0
        db = hub.app[DB]
        feed_row = await cap_store.feed(db, url)
        assert feed_row is not None
        assert await poll(hub.app, feed_row) == ["published", "published"]
        assert await poll(hub.app, feed_row) == []
        listed = await hub.call("GET", "/api/v1/bulletins")
        assert {b["created_by"] for b in listed} == {"sender:kttv"}
        assert sorted(b["targets"]["communes"][0] for b in listed) == ["00001", "00002"]
        refused = await cli(
            "cap-feed", "add", "file:///etc/passwd", "--sender", "kttv", "--data", str(data)
        )
        assert refused == 1


# ---------------------------------------------------------------- CAP out


async def test_the_feed_carries_what_speakers_air_and_passes_the_validator(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={
                "title": "Cháy rừng",
                "text": "Tránh xa khu rừng",
                "targets": {"communes": ["00001"]},
            },
            expect=201,
        )
        everywhere = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Bão số 3", "text": "Ở trong nhà"},
            expect=201,
        )
        await hub.call("POST", f"/api/v1/emergencies/{everywhere['id']}/cancel")
        # A normal bulletin is not in the feed.
        await post(
            hub, alert("N1", info(urgency="Future", severity="Minor", areas=area("Xã An Lư")))
        )
        resp = await hub.client.get("/api/v1/cap/feed.atom")
        assert resp.status == 200 and resp.content_type == "application/atom+xml"
        feed = SafeET.fromstring(await resp.read())
        atom = "{http://www.w3.org/2005/Atom}"
        alerts = [
            e.find(f"{atom}content/{{{capdef.NS}}}alert") for e in feed.findall(f"{atom}entry")
        ]
        assert len(alerts) == 2
        read = []
        for element in alerts:
            assert element is not None
            assert capdef.validate(element) == []
            read.append(capdef.read_alert(element))
        by_type = {a.msg_type: a for a in read}
        fire = by_type["Alert"]
        assert fire.infos[0].headline == "Cháy rừng"
        assert fire.infos[0].areas[0].geocodes[0].value == "11311"
        cancel = by_type["Cancel"]
        assert cancel.references[0].identifier == f"loa-{everywhere['id']}"
        assert cancel.infos[0].areas[0].description == "Hải Phòng"
        # What the hub serves, another hub takes in.
        fire_element = next(
            a for a in alerts if a is not None and "Cháy" in ET.tostring(a, "unicode")
        )
        body = ET.tostring(fire_element, encoding="utf-8")
        again = await post(hub, body)
        assert again["new"] is True


async def test_communes_carry_an_admin_code(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        clash = await hub.call(
            "POST",
            "/api/v1/communes",
            json={"code": "00003", "name": "Xã Khác", "admin_code": "11311"},
            expect=409,
        )
        assert clash["detail"][0]["field"] == "admin_code"
        bad = await hub.call(
            "POST",
            "/api/v1/communes",
            json={"code": "00003", "name": "Xã Khác", "admin_code": "1a"},
            expect=422,
        )
        assert bad["detail"][0]["field"] == "admin_code"
        changed = await hub.call("PUT", "/api/v1/communes/00002", json={"admin_code": "11320"})
        assert changed["admin_code"] == "11320"
        taken = await post(hub, alert("C1", info(areas=area("x", "11320"))))
        assert taken["bulletin"]["targets"]["communes"] == ["00002"]


async def test_a_province_account_may_record_a_central_bulletin(tmp_path: Path) -> None:
    async with cap_hub(tmp_path) as hub:
        schedule = {
            "valid_from": when(),
            "valid_until": when(timedelta(hours=2)),
        }
        body = {
            "title": "Thông tin từ trung ương",
            "kind": "text",
            "priority": "normal",
            "text": "Nội dung",
            "targets": {"communes": ["00001"]},
            "schedule": schedule,
            "source_level": "central",
        }
        made = await hub.call("POST", "/api/v1/bulletins", json=body, expect=201)
        assert made["source_level"] == "central"
        operator = await hub.user("xa.anlu", "commune_operator", "00001")
        refused = await operator.call("POST", "/api/v1/bulletins", json=body, expect=422)
        assert refused["detail"][0]["field"] == "source_level"


async def test_the_poller_records_a_failing_feed_and_polls_only_when_due(tmp_path: Path) -> None:
    from hub.cap_feeds import poll_due

    async with cap_hub(tmp_path, outbound_attempts=1) as hub:
        db = hub.app[DB]
        await add_sender(db, "kttv", "auto", "central", now=_now())
        from hub.cap import add_feed

        # Nothing listens on port 9 of 127.0.0.1: the fetch fails, the feed says why.
        await add_feed(db, "http://127.0.0.1:9/feed.atom", "kttv", 60, now=_now())
        await poll_due(hub.app)
        [feed] = await cap_store.feeds(db)
        assert feed.last_polled_at is not None and feed.last_ok_at is None
        assert feed.last_error and "127.0.0.1:9" in feed.last_error
        polled_at = feed.last_polled_at
        await poll_due(hub.app)  # not due again within its 60 seconds
        [feed] = await cap_store.feeds(db)
        assert feed.last_polled_at == polled_at
