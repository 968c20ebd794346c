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


# ---------------------------------------------------------------- `edge-agent doctor` (issue #4)
MESSAGES.update(
    {
        "doc_pass": {"vi": "ĐẠT", "en": "PASS"},
        "doc_warn": {"vi": "CẢNH BÁO", "en": "WARN"},
        "doc_fail": {"vi": "LỖI", "en": "FAIL"},
        "doc_fix": {"vi": "Cách khắc phục", "en": "Fix"},
        "doc_summary_ok": {
            "vi": "Thiết bị hoạt động được ({warns} cảnh báo).",
            "en": "The device works ({warns} warnings).",
        },
        "doc_summary_bad": {
            "vi": "Có {fails} mục lỗi: {names}.",
            "en": "{fails} checks failed: {names}.",
        },
        "doc_bundle": {"vi": "Đã ghi gói hỗ trợ: {path}", "en": "Support bundle written: {path}"},
        "doc_name_profile": {"vi": "Cấu hình phần cứng", "en": "Hardware profile"},
        "doc_name_audio": {"vi": "Âm thanh (tiếng thử)", "en": "Audio (test tone)"},
        "doc_name_display": {"vi": "Màn hình", "en": "Display"},
        "doc_name_relay": {"vi": "Rơ-le ampli", "en": "Amplifier relay"},
        "doc_name_hub": {"vi": "Kết nối hub", "en": "Hub connection"},
        "doc_name_clock": {"vi": "Đồng hồ", "en": "Clock"},
        "doc_name_disk": {"vi": "Thẻ nhớ và dung lượng", "en": "SD card and disk space"},
        "doc_name_power": {"vi": "Nguồn điện và nhiệt độ", "en": "Power supply and temperature"},
        "doc_name_cache": {"vi": "Kho nội dung", "en": "Media cache"},
        "doc_name_outbox": {"vi": "Báo cáo chờ gửi", "en": "Report outbox"},
        "doc_name_service": {"vi": "Dịch vụ loa-agent", "en": "loa-agent service"},
        "doc_skipped": {
            "vi": "Không kiểm tra được vì cấu hình phần cứng lỗi.",
            "en": "Not checked: the hardware profile is not usable.",
        },
        "doc_fix_profile": {
            "vi": "Sửa trường được nêu trong tệp firmware_profiles/{name}.toml, hoặc đăng ký lại "
            "với đúng cấu hình (edge-agent enroll --profile ...).",
            "en": "Correct the named field in firmware_profiles/{name}.toml, or enroll again "
            "with the right profile (edge-agent enroll --profile ...).",
        },
        "doc_fix_enroll": {
            "vi": "Thiết bị chưa đăng ký: chạy "
            "edge-agent enroll --hub URL --code MÃ --data {data}.",
            "en": "Not enrolled: run edge-agent enroll --hub URL --code CODE --data {data}.",
        },
        "doc_none_fitted": {
            "vi": "Cấu hình này không có {what}.",
            "en": "This profile has no {what}.",
        },
        "doc_fix_audio": {
            "vi": "Kiểm tra dây loa/cáp USB âm thanh; xem danh sách thiết bị bằng 'aplay -l' và "
            "sửa [audio] device trong cấu hình; nếu tác tử đang chạy và giữ thiết bị, dừng nó "
            "(sudo systemctl stop loa-agent) rồi chạy lại doctor.",
            "en": "Check the speaker lead / USB audio cable; list devices with 'aplay -l' and "
            "correct [audio] device in the profile; if the running agent holds the device, "
            "stop it (sudo systemctl stop loa-agent) and run doctor again.",
        },
        "doc_fix_display": {
            "vi": "Kiểm tra cáp HDMI/màn hình đã bật; đặt SDL_VIDEODRIVER=kmsdrm khi không có "
            "giao diện đồ hoạ; nếu tác tử đang chạy và chiếm màn hình, dừng nó rồi thử lại.",
            "en": "Check the HDMI cable and that the screen is on; set SDL_VIDEODRIVER=kmsdrm "
            "without a desktop; if the running agent owns the screen, stop it and retry.",
        },
        "doc_fix_relay": {
            "vi": "Kiểm tra dây rơ-le ở chân GPIO {pin}, người dùng loa thuộc nhóm gpio, và "
            "gpio_pin trong cấu hình; khi bật/tắt phải nghe tiếng rơ-le kêu 'tách'.",
            "en": "Check the relay wiring on GPIO {pin}, that user loa is in group gpio, and "
            "gpio_pin in the profile; the relay should click on each switch.",
        },
        "doc_relay_busy": {
            "vi": "Chân GPIO {pin} đang do tác tử giữ; dừng tác tử để thử bật/tắt rơ-le.",
            "en": "GPIO {pin} is held by the running agent; stop it to toggle-test the relay.",
        },
        "doc_fix_dns": {
            "vi": "Không phân giải được tên {host}: kiểm tra SIM 3G/4G hoặc mạng LAN, và DNS "
            "(/etc/resolv.conf).",
            "en": "Cannot resolve {host}: check the 3G/4G SIM or LAN link and DNS "
            "(/etc/resolv.conf).",
        },
        "doc_fix_tcp": {
            "vi": "Không kết nối được {host}:{port}: kiểm tra mạng, tường lửa, và hub có đang "
            "chạy không (hỏi Sở VHTTDL).",
            "en": "Cannot connect to {host}:{port}: check the network, firewall, and whether "
            "the hub is up (ask the provincial operators).",
        },
        "doc_fix_tls": {
            "vi": "Lỗi TLS: kiểm tra đồng hồ thiết bị (chứng chỉ hết hạn/chưa hiệu lực) và "
            "chứng chỉ của hub.",
            "en": "TLS failed: check the device clock (certificate expired / not yet valid) "
            "and the hub's certificate.",
        },
        "doc_fix_auth": {
            "vi": "Hub từ chối khoá thiết bị: thiết bị có thể đã bị thu hồi; xin mã mới và đăng "
            "ký lại.",
            "en": "The hub refused the device key: the device may be revoked; get a new code "
            "and enroll again.",
        },
        "doc_fix_hub_error": {
            "vi": "Hub trả lỗi {status}: báo cho Sở VHTTDL.",
            "en": "The hub answered {status}: tell the provincial operators.",
        },
        "doc_fix_clock": {
            "vi": "Đồng hồ lệch {offset:+.0f} giây so với hub: kiểm tra NTP (timedatectl), "
            "tác tử vẫn tự hiệu chỉnh theo hub.",
            "en": "The clock is {offset:+.0f} s off the hub: check NTP (timedatectl); the "
            "agent still corrects itself from the hub.",
        },
        "doc_clock_unknown": {
            "vi": "Không so được với hub (không kết nối được).",
            "en": "Could not compare with the hub (not reachable).",
        },
        "doc_fix_disk_space": {
            "vi": "Dung lượng còn ít: xoá tệp không cần trong {data}, hoặc thay thẻ nhớ lớn hơn.",
            "en": "Little space left: remove unneeded files in {data}, or use a larger card.",
        },
        "doc_fix_sd": {
            "vi": "Thẻ nhớ có dấu hiệu hỏng (chỉ-đọc, lỗi ext4 hoặc ghi thử thất bại): sao lưu "
            "{data}, thay thẻ nhớ mới và cài lại bằng raspberry_pi/provision.sh.",
            "en": "The SD card is failing (read-only, ext4 errors or failed test write): back "
            "up {data}, replace the card and provision again with raspberry_pi/provision.sh.",
        },
        "doc_fix_power": {
            "vi": "Nguồn yếu hoặc quá nóng: dùng bộ nguồn 5V 3A chính hãng, dây ngắn; che nắng "
            "và thông gió cho hộp thiết bị. Sụt áp làm hỏng thẻ nhớ.",
            "en": "Weak power or overheating: use an official 5 V 3 A supply and a short lead; "
            "shade and ventilate the box. Under-voltage corrupts SD cards.",
        },
        "doc_fix_cache": {
            "vi": "Khởi động lại tác tử (sudo systemctl restart loa-agent): nó xoá tệp hỏng "
            "khi khởi động và tải lại từ hub. Lỗi lặp lại nghĩa là thẻ nhớ sắp hỏng.",
            "en": "Restart the agent (sudo systemctl restart loa-agent): it deletes bad "
            "objects at start and fetches them again. Repeats mean the SD card is failing.",
        },
        "doc_fix_outbox": {
            "vi": "Nhiều báo cáo chưa gửi được: kiểm tra kết nối hub; báo cáo phát sóng không "
            "bao giờ bị xoá trước khi hub nhận.",
            "en": "Many reports not yet delivered: check the hub connection; proof-of-play is "
            "never dropped before the hub has it.",
        },
        "doc_fix_db": {
            "vi": "Cơ sở dữ liệu trạng thái bị hỏng: dừng tác tử, sao lưu rồi xoá "
            "{path}, chạy lại (kịch bản sẽ tải lại từ hub).",
            "en": "The state database is damaged: stop the agent, back up and remove {path}, "
            "start again (the manifest is fetched again).",
        },
        "doc_fix_service": {
            "vi": "Tác tử không chạy: sudo systemctl restart loa-agent; xem nhật ký bằng "
            "journalctl -u loa-agent -n 100.",
            "en": "The agent is not running: sudo systemctl restart loa-agent; read its log "
            "with journalctl -u loa-agent -n 100.",
        },
    }
)
