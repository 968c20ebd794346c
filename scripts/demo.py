"""`make demo`: a hub, a speaker agent and a board agent on this machine, with demo content.

Data lives in ./demo-data (hub in ./demo-data/hub); a second run reuses it. Ctrl-C stops all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.windows import with_window
from loa_contract import VN_TZ

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LOA_DEMO_DATA", ROOT / "demo-data"))
BIN = Path(sys.executable).parent
HUB_PORT = int(os.environ.get("LOA_DEMO_HUB_PORT", "8080"))
HUB = f"http://127.0.0.1:{HUB_PORT}"
SPEAKER_PORT, BOARD_PORT = HUB_PORT + 1, HUB_PORT + 2
ADMIN = "nguyenvanan"
ADMIN_PASSWORD = "Loa-Demo-2026!"
COMMUNE = "xa-tan-an"
LOCAL_USER = "canboxa"
LOCAL_PASSWORD = "Loa-Xa-2026!"

AUDIO_TEXT = (
    "Thông báo của Ủy ban nhân dân xã Tân An. Sáng thứ Bảy tuần này, trạm y tế xã tổ chức "
    "tiêm phòng dại cho chó, mèo tại nhà văn hoá các thôn. Đề nghị bà con đưa vật nuôi đến "
    "đúng giờ. Xin cảm ơn."
)
BOARD_TEXT = (
    "Lịch cắt điện: 8 giờ đến 11 giờ ngày thứ Năm, thôn Đông và thôn Đoài. "
    "Bà con chủ động sắp xếp công việc."
)


def api(
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> Any:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"{HUB}{path}", data=data, method=method)
    request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"hub refused {method} {path}: {exc.code} {exc.read().decode()}") from exc


def wait_for_hub(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the hub exited at start; see the messages above")
        try:
            with urllib.request.urlopen(f"{HUB}/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit("the hub did not answer within 30 s")


def make_demo_image(path: Path) -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from edge_agent.fonts import find_font

    pygame.init()
    surface = pygame.Surface((800, 450))
    surface.fill((12, 70, 140))
    title = pygame.font.Font(str(find_font()), 54)
    body = pygame.font.Font(str(find_font()), 34)
    surface.blit(title.render("Ngày hội Đại đoàn kết", True, (255, 255, 255)), (40, 60))
    surface.blit(body.render("Thôn Đông · 18/11 · Nhà văn hoá", True, (255, 220, 120)), (40, 170))
    pygame.draw.circle(surface, (220, 30, 40), (680, 330), 70)
    pygame.image.save(surface, str(path))


def seed(token: str) -> None:
    now = datetime.now(VN_TZ)
    # A window around now as well as the usual morning and evening ones, so the demo airs at once.
    start = (now - timedelta(minutes=5)).strftime("%H:%M")
    end = (now + timedelta(hours=4)).strftime("%H:%M")

    api(
        "POST",
        "/api/v1/communes",
        token,
        {
            "code": COMMUNE,
            "name": "Xã Tân An",
            "windows": {
                "speaker": with_window([("05:30", "06:30"), ("17:00", "18:00")], start, end),
                "board": with_window([("06:00", "22:00")], start, end),
            },
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "thong-bao.wav"
        subprocess.run(
            ["espeak-ng", "-v", "vi", "-s", "150", "-w", str(wav), AUDIO_TEXT], check=True
        )
        audio = api("POST", "/api/v1/media", token, raw=wav.read_bytes(), content_type="audio/wav")
        png = Path(tmp) / "ngay-hoi.png"
        make_demo_image(png)
        image = api("POST", "/api/v1/media", token, raw=png.read_bytes(), content_type="image/png")
    schedule = {
        "valid_from": (now - timedelta(minutes=10)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
    }
    targets = {"communes": [COMMUNE], "devices": []}
    for bulletin in (
        {
            "title": "Tiêm phòng dại cho chó, mèo",
            "kind": "audio",
            "priority": "normal",
            "media": audio["sha256"],
            "category": "government_direction",
        },
        {
            "title": "Lịch cắt điện thôn Đông, thôn Đoài",
            "kind": "text",
            "priority": "priority",
            "text": BOARD_TEXT,
            "category": "state_management",
        },
        {
            "title": "Ngày hội Đại đoàn kết toàn dân tộc",
            "kind": "image",
            "priority": "normal",
            "media": image["sha256"],
            "category": "events_holidays",
        },
    ):
        created = api(
            "POST",
            "/api/v1/bulletins",
            token,
            {**bulletin, "targets": targets, "schedule": schedule},
        )
        api("POST", f"/api/v1/bulletins/{created['id']}/publish", token)


#: One personal account per role (no shared accounts), each with the demo's first password,
#: to be changed at first login as the regulations require.
DEMO_PEOPLE = [
    ("lethihoa", "reviewer", "province", "Biên tập viên Sở (thẩm định, xuất bản)"),
    ("tranvanbinh", "contributor", "baotinh", "Báo Hải Phòng (gửi bản tin)"),
    ("phamthimai", "commune_operator", COMMUNE, "Cán bộ xã Tân An"),
    ("dangvankhoa", "technician", "province", "Kỹ thuật viên (thiết bị)"),
    ("vuthilan", "viewer", "province", "Người xem (chỉ đọc)"),
]
DEMO_FIRST_PASSWORD = "Doi-Ngay-2026!"

#: A newspaper's text bulletin: the regulations ask 300–500 words of an agency's text.
CONTRIBUTED_TEXT = " ".join(
    [
        "Báo tỉnh xin thông tin tới bà con xã Tân An về việc cấp đổi thẻ căn cước.",
        "Từ ngày 1 tháng 12, bộ phận một cửa của Ủy ban nhân dân xã tiếp nhận hồ sơ cấp đổi",
        "căn cước vào sáng thứ Bảy hằng tuần, từ 7 giờ 30 đến 11 giờ, để người đi làm ngày",
        "thường cũng có thể đến làm thủ tục mà không phải xin nghỉ việc.",
        "Những trường hợp cần làm thủ tục gồm: công dân đủ 14 tuổi chưa được cấp thẻ, người có",
        "thẻ cũ hết hạn hoặc sắp hết hạn, người bị mất, hỏng thẻ, người thay đổi thông tin về",
        "họ tên, nơi cư trú hoặc đặc điểm nhận dạng.",
        "Khi đến, bà con mang theo thẻ căn cước hoặc chứng minh nhân dân cũ nếu còn giữ, giấy",
        "khai sinh đối với người lần đầu làm thẻ, và các giấy tờ chứng minh thông tin thay đổi",
        "nếu có. Người cao tuổi, người khuyết tật và người bệnh nặng không tự đi lại được có thể",
        "đăng ký với trưởng thôn để cán bộ công an xã đến tận nhà thu nhận hồ sơ.",
        "Lệ phí thực hiện theo quy định của Bộ Tài chính; trường hợp cấp lần đầu và đổi thẻ do",
        "đến tuổi được miễn lệ phí. Cán bộ không thu bất kỳ khoản tiền nào ngoài quy định, mọi",
        "khoản thu đều có biên lai. Nếu có người tự xưng làm hộ để lấy tiền, bà con báo ngay cho",
        "công an xã.",
        "Sau khi nộp hồ sơ, bà con nhận giấy hẹn trả kết quả. Thẻ mới được trả tại trụ sở Ủy ban",
        "nhân dân xã hoặc gửi qua bưu điện về tận nhà theo yêu cầu, với cước phí do người nhận",
        "chi trả. Trong thời gian chờ thẻ, giấy hẹn có giá trị để làm các thủ tục hành chính",
        "thông thường tại xã.",
        "Bà con cũng có thể kích hoạt tài khoản định danh điện tử mức độ hai ngay khi làm thủ tục,",
        "để dùng các dịch vụ công trực tuyến như đăng ký khai sinh, đăng ký thường trú, xin cấp",
        "phiếu lý lịch tư pháp mà không cần đến trụ sở. Cán bộ đoàn thanh niên hỗ trợ cài đặt",
        "ứng dụng trên điện thoại cho người chưa quen sử dụng.",
        "Để tránh phải chờ lâu, các thôn được sắp xếp theo lịch: thôn Đông và thôn Đoài vào thứ",
        "Bảy tuần đầu tháng, thôn Trung và thôn Bắc vào thứ Bảy tuần thứ hai, các thôn còn lại vào",
        "hai tuần cuối tháng. Ai bận vào ngày của thôn mình có thể đến vào bất kỳ sáng thứ Bảy",
        "nào khác trong tháng.",
        "Báo tỉnh sẽ tiếp tục đưa tin về kết quả thực hiện và những thay đổi mới nhất về thủ tục.",
        "Xin trân trọng cảm ơn bà con đã theo dõi.",
    ]
)


#: The register of units that send bulletins (hub/units.py): the newspaper whose contributor
#: the demo has, and an agency, each by the name the console shows instead of its code.
DEMO_UNITS = [
    ("baotinh", "Báo Hải Phòng", "newspaper"),
    ("kttv", "Trung tâm Khí tượng Thủy văn", "agency"),
]


def seed_people(token: str) -> None:
    for code, name, kind in DEMO_UNITS:
        api("POST", "/api/v1/units", token, {"code": code, "name": name, "kind": kind})
    for username, role, unit, _about in DEMO_PEOPLE:
        api(
            "POST",
            "/api/v1/users",
            token,
            {"username": username, "role": role, "unit": unit, "password": DEMO_FIRST_PASSWORD},
        )
    # The newspaper's submission, waiting in the reviewers' queue.
    now = datetime.now(VN_TZ)
    contributor = api(
        "POST",
        "/api/v1/auth/login",
        body={"username": "tranvanbinh", "password": DEMO_FIRST_PASSWORD},
    )["token"]
    own = CONTRIBUTOR_OWN_PASSWORD
    contributor = api(
        "POST",
        "/api/v1/auth/password",
        contributor,
        {"old_password": DEMO_FIRST_PASSWORD, "new_password": own},
    )["token"]
    draft = api(
        "POST",
        "/api/v1/bulletins",
        contributor,
        {
            "title": "Làm căn cước vào sáng thứ Bảy",
            "kind": "text",
            "priority": "normal",
            "text": CONTRIBUTED_TEXT,
            "category": "state_management",
            "schedule": {
                "valid_from": now.isoformat(),
                "valid_until": (now + timedelta(days=14)).isoformat(),
            },
        },
    )
    api("POST", f"/api/v1/bulletins/{draft['id']}/submit", contributor)


def enroll(token: str, name: str, kind: str, profile: str, data: Path) -> None:
    if (data / "identity.json").exists():
        return
    device = api(
        "POST",
        "/api/v1/devices",
        token,
        {"commune": COMMUNE, "name": name, "kind": kind, "profile": profile},
    )
    subprocess.run(
        [
            str(BIN / "edge-agent"),
            "enroll",
            "--hub",
            HUB,
            "--code",
            device["enrollment_code"],
            "--data",
            str(data),
        ],
        check=True,
    )
    # The local page's account for commune staff, set at provisioning on a real device.
    subprocess.run(
        [
            str(BIN / "edge-agent"),
            "local-user",
            "set",
            LOCAL_USER,
            "--password-stdin",
            "--data",
            str(data),
        ],
        input=(LOCAL_PASSWORD + "\n").encode(),
        check=True,
    )


#: The banner's words: Vietnamese for commune staff, English with LOA_LANG=en.
BANNER_WORDS: dict[str, dict[str, str]] = {
    "vi": {
        "running": "Bản demo Loa đang chạy.",
        "console": "Bảng điều khiển (hub):",
        "accounts": "Tài khoản (mỗi vai trò một người):",
        "admin": "quản trị viên",
        "first": "mật khẩu đầu tiên {password}, đổi ở lần đăng nhập đầu",
        "changed": "đã đổi thành {password}",
        "api": "API của hub:",
        "openapi": "OpenAPI tại",
        "speaker": "Trang của cụm loa:",
        "board": "Trang của bảng tin:",
        "login": "đăng nhập",
        "emergency": "Phát tin khẩn cấp:",
        "again": "Nhấn Enter để xem lại thông tin này; `make demo-info` in ra ở cửa sổ khác.",
        "stop": "Ctrl-C để dừng tất cả.",
    },
    "en": {
        "running": "The Loa demo is running.",
        "console": "Hub console:",
        "accounts": "Accounts (one person per role):",
        "admin": "administrator",
        "first": "first password {password}, changed at first login",
        "changed": "already changed to {password}",
        "api": "Hub API:",
        "openapi": "OpenAPI at",
        "speaker": "Speaker local page:",
        "board": "Board local page:",
        "login": "login",
        "emergency": "Fire an emergency:",
        "again": "Press Enter to see this again; `make demo-info` prints it in another window.",
        "stop": "Ctrl-C stops everything.",
    },
}
#: The demo's roles as the console names them.
ROLE_NAMES: dict[str, dict[str, str]] = {
    "vi": {
        "reviewer": "biên tập viên (thẩm định)",
        "contributor": "báo, cơ quan (gửi bản tin)",
        "commune_operator": "cán bộ xã",
        "technician": "kỹ thuật viên",
        "viewer": "người xem",
    },
    "en": {
        "reviewer": "editor (review)",
        "contributor": "newspaper, agency (submits)",
        "commune_operator": "commune staff",
        "technician": "technician",
        "viewer": "viewer (read-only)",
    },
}
#: The password the demo's contributor already chose (it submitted the queued bulletin).
CONTRIBUTOR_OWN_PASSWORD = "Bao-Tinh-2026!"


def banner(lang: str) -> str:
    """What the demo prints once it is up: where each page is and who logs in with what."""
    lang = "en" if lang == "en" else "vi"
    w = BANNER_WORDS[lang]
    login = (
        f"curl -s {HUB}/api/v1/auth/login "
        f'-d \'{{"username":"{ADMIN}","password":"{ADMIN_PASSWORD}"}}\''
        " | python3 -c 'import sys,json; print(json.load(sys.stdin)[\"token\"])'"
    )
    fire = (
        f'curl -s -X POST {HUB}/api/v1/emergencies -H "Authorization: Bearer $({login})" '
        "-H 'Content-Type: application/json' "
        '-d \'{"title":"Cảnh báo lũ quét","text":"Khẩn cấp: lũ quét trên sông Cầu, '
        "bà con di chuyển lên vùng cao ngay.\"}'"
    )
    people = [f"    {ADMIN:<13} {w['admin']:<30} {ADMIN_PASSWORD}"]
    for username, role, _unit, _about in DEMO_PEOPLE:
        password = (
            w["changed"].format(password=CONTRIBUTOR_OWN_PASSWORD)
            if username == "tranvanbinh"
            else w["first"].format(password=DEMO_FIRST_PASSWORD)
        )
        people.append(f"    {username:<13} {ROLE_NAMES[lang][role]:<30} {password}")
    local = f"({w['login']} {LOCAL_USER} / {LOCAL_PASSWORD})"
    lines = [
        "",
        "=" * 72,
        w["running"],
        f"  {w['console']:<26}{HUB}/",
        f"  {w['accounts']}",
        *people,
        f"  {w['speaker']:<26}http://127.0.0.1:{SPEAKER_PORT}/  {local}",
        f"  {w['board']:<26}http://127.0.0.1:{BOARD_PORT}/  {local}",
        f"  {w['api']:<26}{HUB}/api/v1  ({w['openapi']} {HUB}/api/v1/openapi.json)",
        f"  {w['emergency']}",
        f"    {fire}",
        w["again"],
        w["stop"],
        "=" * 72,
    ]
    return "\n".join(lines)


def banner_on_enter(text: str) -> None:
    """Print the banner again each time Enter is pressed; ends quietly when stdin does."""
    for _line in sys.stdin:
        print(text, flush=True)


def wait_for_agents(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until both agents' local pages answer: their start-up messages (VLC, ALSA, SDL)
    come first, so the banner printed after them stays on screen."""
    deadline = time.monotonic() + 60
    for port in (SPEAKER_PORT, BOARD_PORT):
        while time.monotonic() < deadline:
            if any(child.poll() is not None for child in children):
                raise SystemExit("a part of the demo exited at start; see the messages above")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)


def main() -> int:
    if sys.argv[1:] == ["--info"]:
        print(banner(os.environ.get("LOA_LANG", "vi")))
        return 0
    DATA.mkdir(exist_ok=True)
    hub_data = DATA / "hub"
    children: list[subprocess.Popen[bytes]] = []
    first_run = not (hub_data / "hub.sqlite3").exists()
    if first_run:
        subprocess.run(
            [
                str(BIN / "hub"),
                "user",
                "add",
                ADMIN,
                "--role",
                "admin",
                "--password-stdin",
                "--data",
                str(hub_data),
            ],
            input=ADMIN_PASSWORD.encode(),
            check=True,
        )
    hub = subprocess.Popen(
        [
            str(BIN / "hub"),
            "serve",
            "--data",
            str(hub_data),
            "--host",
            "127.0.0.1",
            "--port",
            str(HUB_PORT),
            "--no-access-log",
        ]
    )
    children.append(hub)
    try:
        wait_for_hub(hub)
        token = api(
            "POST", "/api/v1/auth/login", body={"username": ADMIN, "password": ADMIN_PASSWORD}
        )["token"]
        if not api("GET", "/api/v1/communes", token):
            seed(token)
            seed_people(token)
        enroll(token, "Cụm loa thôn Đông", "speaker", "speaker-cluster", DATA / "speaker")
        enroll(token, "Bảng tin UBND xã", "board", "lcd-board-1080p", DATA / "board")

        vlc_args: list[str] = []
        # A playback device, not merely /dev/snd (a VM often has only its sequencer and
        # timer): without one the speaker would rightly report every airing unheard.
        if not any(Path("/dev/snd").glob("pcmC*D*p")):
            print("(no sound card here: audio plays to VLC's dummy output)")
            vlc_args = ["--vlc-arg=--aout=dummy"]
        agent_env = dict(os.environ)
        if not Path("/proc/device-tree/model").exists():
            # Not a Raspberry Pi: the amplifier relay's GPIO pin is simulated (gpiozero's mock
            # pins), so the relay logic still runs and shows in status.
            agent_env.setdefault("GPIOZERO_PIN_FACTORY", "mock")
        board_env = dict(agent_env)
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            print("(no display here: the board renders offscreen)")
            board_env["SDL_VIDEODRIVER"] = "dummy"
            vlc_args_board = [*vlc_args, "--vlc-arg=--vout=dummy"]
        else:
            vlc_args_board = vlc_args
        children.append(
            subprocess.Popen(
                [
                    str(BIN / "edge-agent"),
                    "run",
                    "--data",
                    str(DATA / "speaker"),
                    "--http-port",
                    str(SPEAKER_PORT),
                    "--http-host",
                    "127.0.0.1",
                    *vlc_args,
                ],
                env=agent_env,
            )
        )
        children.append(
            subprocess.Popen(
                [
                    str(BIN / "edge-agent"),
                    "run",
                    "--data",
                    str(DATA / "board"),
                    "--http-port",
                    str(BOARD_PORT),
                    "--http-host",
                    "127.0.0.1",
                    *vlc_args_board,
                ],
                env=board_env,
            )
        )
        wait_for_agents(children)
        text = banner(os.environ.get("LOA_LANG", "vi"))
        print(text, flush=True)
        # Enter prints the banner again: the agents' logs scroll it away.
        threading.Thread(target=banner_on_enter, args=(text,), daemon=True).start()
        stop = {"now": False}

        def on_signal(signum: int, frame: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while not stop["now"] and all(child.poll() is None for child in children):
            time.sleep(0.5)
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    raise SystemExit(main())
