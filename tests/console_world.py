"""A hub with something on every console page, and one account per role: what the layout and
home-page tests walk. Built through the API, as people would fill it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hub.testing import HubHarness
from loa_contract import VN_TZ, utcnow

OWN_PASSWORD = "Own-pass-2!"
COMMUNE, OTHER = "00001", "00002"

#: (username, role, unit): every role, commune-bound where the role may be.
PEOPLE: list[tuple[str, str, str | None]] = [
    ("lethihoa", "reviewer", None),
    ("tranvanbinh", "contributor", "baotinh"),
    ("phamthimai", "commune_operator", COMMUNE),
    ("dangvankhoa", "technician", "province"),
    ("vuthilan", "viewer", "province"),
    ("hoangvanminh", "viewer", COMMUNE),
]

#: A contributor's 300–500 words (the regulations' length for an agency's text).
LONG_TEXT = " ".join(["Bà con xã Tân Phước lưu ý lịch tiêm phòng cho vật nuôi."] * 30)


@dataclass
class World:
    hub: HubHarness
    harnesses: dict[str, HubHarness] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


def schedule(days: int = 7) -> dict[str, str]:
    now = utcnow().astimezone(VN_TZ)
    return {
        "valid_from": (now - timedelta(minutes=5)).isoformat(),
        "valid_until": (now + timedelta(days=days)).isoformat(),
    }


def bulletin(title: str, **kw: Any) -> dict[str, Any]:
    return {
        "title": title,
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "category": "state_management",
        "targets": {"communes": [COMMUNE], "devices": []},
        "schedule": schedule(),
        **kw,
    }


async def build(hub: HubHarness) -> World:
    world = World(hub)
    await hub.commune(COMMUNE, name="Xã Tân Phước")
    await hub.commune(OTHER, name="Xã Hoà Bình")
    speaker = await hub.new_device(COMMUNE, "speaker")
    world.ids["device"] = speaker.id
    await hub.device(COMMUNE, "board", name="Bảng tin UBND xã Tân Phước")
    # The contributor's newspaper, by name in the register of units (hub/units.py).
    await hub.call(
        "POST",
        "/api/v1/units",
        json={"code": "baotinh", "name": "Báo Hải Phòng", "kind": "newspaper"},
        expect=201,
    )
    for username, role, unit in PEOPLE:
        world.harnesses[username] = await hub.user(username, role, unit, new_password=OWN_PASSWORD)
    published = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin("Lịch tiêm phòng dại"), expect=201
    )
    await hub.call("POST", f"/api/v1/bulletins/{published['id']}/publish")
    world.ids["published"] = published["id"]
    contributor = world.harnesses["tranvanbinh"]
    reviewer = world.harnesses["lethihoa"]
    for title in ("Làm căn cước vào sáng thứ Bảy", "Thu gom rác thải nhựa"):
        draft = await contributor.call(
            "POST", "/api/v1/bulletins", json=bulletin(title), expect=201
        )
        await contributor.call("POST", f"/api/v1/bulletins/{draft['id']}/submit")
        world.ids.setdefault("submitted", draft["id"])
    world.ids["returned"] = world.ids["submitted"]
    await reviewer.call(
        "POST",
        f"/api/v1/bulletins/{world.ids['returned']}/return",
        json={"comment": "Thiếu giờ làm việc buổi chiều; bổ sung rồi gửi lại."},
    )
    draft = await contributor.call(
        "POST", "/api/v1/bulletins", json=bulletin("Bản nháp chưa gửi"), expect=201
    )
    world.ids["draft"] = draft["id"]
    emergency = await hub.call(
        "POST",
        "/api/v1/emergencies",
        json={"title": "Cảnh báo lũ quét", "text": "Bà con di chuyển lên vùng cao ngay."},
        expect=201,
    )
    world.ids["emergency"] = emergency["id"]
    group = await hub.call(
        "POST",
        "/api/v1/device-groups",
        json={"name": "Loa thôn Đông", "commune": COMMUNE},
        expect=201,
    )
    world.ids["group"] = group["id"]
    # An uploaded file no bulletin uses (the uploads page and its delete confirmation).
    from tests.real_files import png_bytes

    world.ids["media"] = (await hub.upload(png_bytes(), "image/png"))["sha256"]
    return world
