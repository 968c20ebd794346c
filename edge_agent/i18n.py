"""Messages for commune staff and technicians: Vietnamese by default, English on request."""

from __future__ import annotations

import os

MESSAGES: dict[str, dict[str, str]] = {
    "enrolled": {
        "vi": "Đã đăng ký thiết bị {device_id} ({kind}, xã {commune}). Danh tính lưu tại {path}.",
        "en": "Enrolled device {device_id} ({kind}, commune {commune}). Identity saved to {path}.",
    },
    "enroll_failed": {
        "vi": "Không đăng ký được với hub: {reason}",
        "en": "Enrollment failed: {reason}",
    },
    "hub_unreachable": {
        "vi": "Không kết nối được hub {url}: {reason}",
        "en": "Cannot reach the hub {url}: {reason}",
    },
    "profile_bad": {
        "vi": "Cấu hình phần cứng không hợp lệ: {reason}",
        "en": "Bad hardware profile: {reason}",
    },
    "not_enrolled": {"vi": "Thiết bị chưa đăng ký: {reason}", "en": "Not enrolled: {reason}"},
    "running": {
        "vi": "Tác tử {device_id} đang chạy; trang trạng thái: http://{host}:{port}/api/status",
        "en": "Agent {device_id} running; status: http://{host}:{port}/api/status",
    },
    "stopping": {"vi": "Đang dừng…", "en": "Stopping…"},
    "status_offline": {
        "vi": "Tác tử không chạy (không có trạng thái trực tiếp). "
        "Phiên bản kịch bản đã lưu: {version}.",
        "en": "The agent is not running (no live status). Stored manifest version: {version}.",
    },
    "status_line_device": {"vi": "Thiết bị", "en": "Device"},
    "status_line_hub": {"vi": "Kết nối hub", "en": "Hub connection"},
    "status_line_manifest": {"vi": "Phiên bản kịch bản", "en": "Manifest version"},
    "status_line_playing": {"vi": "Đang phát", "en": "Now playing"},
    "status_line_next": {"vi": "Tiếp theo", "en": "Next"},
    "status_line_clock": {"vi": "Đồng hồ", "en": "Clock"},
    "status_line_outbox": {"vi": "Báo cáo chờ gửi", "en": "Reports waiting"},
    "status_line_reason": {"vi": "Lý do", "en": "Reason"},
    "yes": {"vi": "có", "en": "yes"},
    "no": {"vi": "không", "en": "no"},
    "nothing": {"vi": "(không có)", "en": "(nothing)"},
    "trusted": {"vi": "tin cậy", "en": "trusted"},
    "untrusted": {"vi": "chưa tin cậy", "en": "not trusted"},
}

PRIORITY_NAMES = {
    "emergency": {"vi": "khẩn cấp", "en": "emergency"},
    "priority": {"vi": "ưu tiên", "en": "priority"},
    "normal": {"vi": "thông thường", "en": "normal"},
}


def default_lang() -> str:
    lang = os.environ.get("LOA_LANG", "vi")
    return lang if lang in ("vi", "en") else "vi"


def t(key: str, lang: str, **values: object) -> str:
    return MESSAGES[key][lang].format(**values)
