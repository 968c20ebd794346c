"""Inputs that once answered 500: each now gets a 4xx naming the field and changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.testing import ADMIN, ADMIN_PASSWORD, HubHarness, running_hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        yield harness


def _fields(body: dict) -> set[str]:
    return {entry["field"] for entry in body["detail"]}


@pytest.mark.parametrize("month", ["0000-01", "0001-01", "9999-12", "1999-12"])
async def test_report_months_outside_the_civil_years(hub: HubHarness, month: str) -> None:
    body = await hub.call("GET", "/api/v1/reports/monthly", params={"month": month}, expect=422)
    assert _fields(body) == {"month"}


@pytest.mark.parametrize(
    ("start", "end"), [("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31")]
)
async def test_report_days_outside_the_civil_years(hub: HubHarness, start: str, end: str) -> None:
    body = await hub.call(
        "GET", "/api/v1/reports/monthly", params={"start": start, "end": end}, expect=422
    )
    assert "start" in _fields(body)


async def test_a_month_inside_them_still_works(hub: HubHarness) -> None:
    report = await hub.call("GET", "/api/v1/reports/monthly", params={"month": "2199-12"})
    assert report["totals"]["airings"] == 0


@pytest.mark.parametrize(
    "valid_until",
    ["9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+14:00"],
)
async def test_bulletin_validity_at_the_ends_of_the_calendar(
    hub: HubHarness, valid_until: str
) -> None:
    before = await hub.call("GET", "/api/v1/bulletins")
    body = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Thông báo",
            "kind": "text",
            "priority": "normal",
            "text": "Lịch tiêm phòng",
            "targets": {"communes": ["00001"]},
            "schedule": {"valid_from": "2026-01-01T00:00:00+07:00", "valid_until": valid_until},
        },
        expect=422,
    )
    assert _fields(body) == {"schedule.valid_until"}
    assert await hub.call("GET", "/api/v1/bulletins") == before


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_audit_filters_at_the_ends_of_the_calendar(hub: HubHarness, since: str) -> None:
    body = await hub.call("GET", "/api/v1/audit", params={"since": since}, expect=422)
    assert _fields(body) == {"since"}


async def test_text_with_a_nul_character_is_refused_naming_the_field(hub: HubHarness) -> None:
    """PostgreSQL cannot store U+0000 (it answered 500); both backends refuse it the same way,
    in a body at any depth, in a key, in the query and in the path, and change nothing."""
    units_before = await hub.call("GET", "/api/v1/units")
    body = await hub.call(
        "POST", "/api/v1/units", json={"code": "baohp", "name": "Báo\u0000HP"}, expect=422
    )
    assert body["error"] == "validation_error" and _fields(body) == {"name"}
    assert "U+0000" in body["detail"][0]["message"]
    body = await hub.call(
        "POST", "/api/v1/communes", json={"code": "00002", "name": "Xã\u0000"}, expect=422
    )
    assert _fields(body) == {"name"}
    assert await hub.call("GET", "/api/v1/units") == units_before
    await hub.call("GET", "/api/v1/communes/00002", expect=404)
    body = await hub.call("GET", "/api/v1/bulletins", params={"q": "a\u0000b"}, expect=422)
    assert _fields(body) == {"q"}
    body = await hub.call("GET", "/api/v1/units/bao%00hp", expect=422)
    assert _fields(body) == {"code"}
    # An escaped backslash before "u0000" is text, not a NUL: it is stored as sent.
    made = await hub.call(
        "POST", "/api/v1/units", json={"code": "baohp", "name": "Báo \\u0000 HP"}, expect=201
    )
    assert made["name"] == "Báo \\u0000 HP"


def test_nul_fields_are_found_at_any_depth_and_in_keys() -> None:
    from hub.errors import nul_fields

    assert nul_fields({"a": "ok", "b": ["x", {"c": "y\u0000"}]}) == ["b[1].c"]
    assert nul_fields({"k\u0000": 1}) == ["k\\u0000"]
    assert nul_fields(["\u0000", "fine", ("\u0000",)]) == ["[0]", "[2][0]"]
    assert nul_fields({"text": "Lịch tiêm phòng", "n": 3, "none": None}) == []


async def test_a_nul_in_a_console_form_answers_a_page_not_json(hub: HubHarness) -> None:
    """The console's people get a page they can read whatever the backend: PostgreSQL refuses
    U+0000 where SQLite stores it, and that refusal must not surface as the API's JSON."""
    client = hub.client

    async def csrf(path: str) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', await (await client.get(path)).text())
        assert found is not None, path
        return found[1]

    refused = await client.post(
        "/login",
        data={"username": "ad\x00min", "password": "x", "csrf": await csrf("/login"), "next": "/"},
    )
    assert refused.status in (401, 422) and refused.content_type == "text/html", refused.status
    # What was tried is kept, the NUL shown rather than dropped.
    tried = await hub.call("GET", "/api/v1/audit", params={"action": "auth.login_failed"})
    assert [entry["object"] for entry in tried["items"]] == ["ad\\x00min"], tried
    signed_in = await client.post(
        "/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf": await csrf("/login")},
    )
    assert signed_in.status == 200
    communes = await hub.call("GET", "/api/v1/communes")
    for path, form in (
        ("/communes", {"code": "00002", "name": "Xã\x00Hai"}),
        ("/units", {"code": "baohp", "name": "Báo\x00HP"}),
        ("/users", {"username": "ab\x00c", "role": "viewer", "password": "Temp-pass1!"}),
    ):
        answer = await client.post(path, data={**form, "csrf": await csrf(path)})
        assert answer.status == 422 and answer.content_type == "text/html", (path, answer.status)
    for path in ("/bulletins?q=a%00b", "/audit?actor=a%00b", "/devices?q=a%00b"):
        answer = await client.get(path)
        assert answer.status < 500 and answer.content_type == "text/html", (path, answer.status)
    assert await hub.call("GET", "/api/v1/communes") == communes
