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
    "hub_untrusted": {
        "vi": "Không tin được hub {url}: chứng chỉ TLS của nó không do CA {ca} cấp (hoặc không "
        "đúng tên máy). Kiểm tra địa chỉ hub và tệp CA (--ca) do Sở VHTTDL cấp; kiểm tra cả "
        "đồng hồ thiết bị. Chưa lưu gì. Chi tiết: {reason}",
        "en": "Not trusting the hub {url}: its TLS certificate is not issued by the CA {ca} (or "
        "not for that host name). Check the hub address and the CA file (--ca) from the "
        "provincial operators, and the device clock. Nothing was saved. Detail: {reason}",
    },
    "system_ca_store": {"vi": "của hệ thống", "en": "in the system's store"},
    "ca_needs_https": {
        "vi": "--ca chỉ dùng với địa chỉ hub https://, không phải {url}",
        "en": "--ca goes with an https:// hub address, not {url}",
    },
    "ca_bad": {
        "vi": "Tệp CA {path} không dùng được (cần chứng chỉ PEM): {reason}",
        "en": "The CA file {path} cannot be used (a PEM certificate is needed): {reason}",
    },
    "profile_bad": {
        "vi": "Cấu hình phần cứng không hợp lệ: {reason}",
        "en": "Bad hardware profile: {reason}",
    },
    "not_enrolled": {"vi": "Thiết bị chưa đăng ký: {reason}", "en": "Not enrolled: {reason}"},
    "running": {
        "vi": "Tác tử {device_id} đang chạy; trang của thiết bị: http://{host}:{port}/",
        "en": "Agent {device_id} running; its page: http://{host}:{port}/",
    },
    "stopping": {"vi": "Đang dừng…", "en": "Stopping…"},
    "status_offline": {
        "vi": "Tác tử không chạy (không có trạng thái trực tiếp). "
        "Phiên bản kịch bản đã lưu: {version}.",
        "en": "The agent is not running (no live status). Stored manifest version: {version}.",
    },
    "status_line_device": {"vi": "Thiết bị", "en": "Device"},
    "status_line_hub": {"vi": "Kết nối hub", "en": "Hub connection"},
    "status_line_standby": {"vi": "máy dự phòng", "en": "standby node"},
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
        "doc_fix_ca": {
            "vi": "Tệp CA của hub ({path}) không đọc được: đăng ký lại với --ca và tệp CA do "
            "Sở VHTTDL cấp.",
            "en": "The hub's CA file ({path}) cannot be read: enroll again with --ca and the CA "
            "file from the provincial operators.",
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


# ---------------------------------------------------------------- local page (issue #4)
# Every label of the LAN page and its scripts; the page embeds the "page_" keys for its
# JavaScript, so nothing visible is written in a template or a script.
MESSAGES.update(
    {
        "page_title": {"vi": "Loa — Thiết bị {device_id}", "en": "Loa — Device {device_id}"},
        "page_heading": {"vi": "Trạng thái thiết bị", "en": "Device status"},
        "page_kind_speaker": {"vi": "Cụm loa truyền thanh", "en": "Loudspeaker cluster"},
        "page_kind_board": {"vi": "Bảng tin điện tử", "en": "Electronic bulletin board"},
        "page_commune": {"vi": "Xã", "en": "Commune"},
        "page_online": {"vi": "Đang kết nối hub", "en": "Connected to the hub"},
        "page_offline": {"vi": "Mất kết nối hub", "en": "Hub offline"},
        "page_now_playing": {"vi": "Đang phát", "en": "Now playing"},
        "page_nothing_playing": {"vi": "Không phát gì", "en": "Nothing playing"},
        "page_elapsed": {"vi": "Đã phát {elapsed}", "en": "Played {elapsed}"},
        "page_next": {"vi": "Sắp phát", "en": "Up next"},
        "page_nothing_next": {"vi": "Không có mục nào", "en": "Nothing scheduled"},
        "page_windows": {"vi": "Khung giờ phát sóng hôm nay", "en": "Today's broadcast windows"},
        "page_no_windows": {"vi": "Chưa có khung giờ", "en": "No windows set"},
        "page_window_open": {"vi": "đang mở", "en": "open now"},
        "page_sync": {"vi": "Đồng bộ với hub", "en": "Sync with the hub"},
        "page_hub": {"vi": "Máy chủ hub", "en": "Hub node"},
        "page_hub_standby": {
            "vi": "{url} (máy dự phòng; hub chính {home} chưa trả lời)",
            "en": "{url} (a standby node; the enrolled hub {home} does not answer)",
        },
        "page_last_sync": {"vi": "Lần đồng bộ cuối", "en": "Last sync"},
        "page_never": {"vi": "chưa có", "en": "never"},
        "page_manifest": {"vi": "Phiên bản kịch bản", "en": "Manifest version"},
        "page_downloading": {"vi": "Đang tải", "en": "Downloading"},
        "page_up_to_date": {"vi": "Đã tải đủ nội dung", "en": "All content downloaded"},
        "page_reports_waiting": {"vi": "Báo cáo chờ gửi", "en": "Reports waiting"},
        "page_device": {"vi": "Thiết bị", "en": "Device"},
        "page_cache": {"vi": "Bộ nhớ nội dung", "en": "Content cache"},
        "page_cache_value": {"vi": "{objects} tệp, {size}", "en": "{objects} files, {size}"},
        "page_disk": {"vi": "Thẻ nhớ", "en": "SD card"},
        "page_disk_value": {"vi": "còn trống {free} / {total}", "en": "{free} free of {total}"},
        "page_temperature": {"vi": "Nhiệt độ", "en": "Temperature"},
        "page_unknown": {"vi": "không rõ", "en": "unknown"},
        "page_volume": {"vi": "Âm lượng", "en": "Volume"},
        "page_uptime": {"vi": "Thời gian chạy", "en": "Uptime"},
        "page_clock": {"vi": "Đồng hồ", "en": "Clock"},
        "page_clock_trusted": {"vi": "Tin cậy", "en": "Trusted"},
        "page_clock_untrusted": {
            "vi": "Chưa tin cậy — chỉ phát tin khẩn cấp",
            "en": "Not trusted — only emergencies play",
        },
        "page_clock_offset": {"vi": "Lệch so với hub: {offset}", "en": "Off the hub by {offset}"},
        "page_clock_src_hub": {"vi": "đã đối chiếu giờ với hub", "en": "confirmed by the hub"},
        "page_clock_src_ntp": {"vi": "đồng bộ qua NTP", "en": "synchronized by NTP"},
        "page_clock_src_same_boot": {
            "vi": "đã đối chiếu với hub trước đó, từ lúc khởi động",
            "en": "confirmed by the hub earlier since boot",
        },
        "page_clock_src_plausible": {
            "vi": "đồng hồ giữ được giờ qua lần mất điện",
            "en": "the clock kept time across the power cut",
        },
        "page_clock_src_system": {"vi": "đồng hồ hệ thống", "en": "system clock"},
        "page_clock_src_waiting": {
            "vi": "đang chờ hub hoặc NTP xác nhận giờ",
            "en": "waiting for the hub or NTP to confirm the time",
        },
        "page_clock_src_behind": {
            "vi": "đồng hồ chậm hơn lần xác nhận gần nhất",
            "en": "the clock is behind the last confirmed time",
        },
        "page_clock_src_ahead": {
            "vi": "đồng hồ chạy quá xa so với lần xác nhận gần nhất",
            "en": "the clock ran implausibly far since it was last confirmed",
        },
        "page_clock_src_restored": {
            "vi": "giờ được khôi phục từ lần lưu trước khi mất điện (chậm)",
            "en": "the time was restored from a save before the power cut (behind)",
        },
        "page_clock_src_stepped": {
            "vi": "giờ hệ thống đã bị chỉnh sau lần xác nhận",
            "en": "the system time was changed since it was confirmed",
        },
        "page_charts": {"vi": "7 ngày qua", "en": "Last 7 days"},
        "page_chart_plays": {"vi": "Lượt phát mỗi ngày", "en": "Plays per day"},
        "page_chart_uptime": {"vi": "Số giờ hoạt động mỗi ngày", "en": "Hours running per day"},
        "page_plays_today": {"vi": "Lượt phát hôm nay: {n}", "en": "Plays today: {n}"},
        "page_hours": {"vi": "{n} giờ", "en": "{n} h"},
        "page_recent": {"vi": "Nhật ký phát gần đây", "en": "Recent plays"},
        "page_col_time": {"vi": "Thời gian", "en": "Time"},
        "page_col_title": {"vi": "Bản tin", "en": "Bulletin"},
        "page_col_priority": {"vi": "Mức độ", "en": "Priority"},
        "page_col_outcome": {"vi": "Kết quả", "en": "Outcome"},
        "page_outcome_completed": {"vi": "phát trọn", "en": "completed"},
        "page_outcome_preempted": {"vi": "bị tin khẩn cắt ngang", "en": "pre-empted"},
        "page_outcome_stopped": {"vi": "đã dừng", "en": "stopped"},
        "page_outcome_failed": {"vi": "lỗi", "en": "failed"},
        "page_no_plays": {"vi": "Chưa có lượt phát", "en": "No plays yet"},
        "page_test_item": {"vi": "Thử thiết bị", "en": "Device test"},
        "page_priority_emergency": {"vi": "khẩn cấp", "en": "emergency"},
        "page_priority_priority": {"vi": "ưu tiên", "en": "priority"},
        "page_priority_normal": {"vi": "thông thường", "en": "normal"},
        "page_controls": {"vi": "Điều khiển", "en": "Controls"},
        "page_login_to_control": {
            "vi": "Đăng nhập để chỉnh âm lượng, dừng phát, thử loa hoặc đồng bộ lại.",
            "en": "Log in to change the volume, stop playback, test or resync.",
        },
        "page_login": {"vi": "Đăng nhập", "en": "Log in"},
        "page_logout": {"vi": "Đăng xuất", "en": "Log out"},
        "page_username": {"vi": "Tên đăng nhập", "en": "User name"},
        "page_password": {"vi": "Mật khẩu", "en": "Password"},
        "page_logged_in_as": {"vi": "Đã đăng nhập: {user}", "en": "Logged in as {user}"},
        "page_set_volume": {"vi": "Đặt âm lượng", "en": "Set volume"},
        "page_stop": {"vi": "Dừng bản tin đang phát", "en": "Stop what is playing"},
        "page_test_tone": {"vi": "Phát tiếng thử loa", "en": "Play a test tone"},
        "page_test_pattern": {"vi": "Hiện hình kiểm tra màn hình", "en": "Show a test pattern"},
        "page_resync": {"vi": "Đồng bộ lại với hub", "en": "Resync with the hub"},
        "page_back": {"vi": "Về trang trạng thái", "en": "Back to the status page"},
        "page_lang_other": {"vi": "English", "en": "Tiếng Việt"},
        "page_updated": {"vi": "Cập nhật lúc {time}", "en": "Updated at {time}"},
        "page_refresh_failed": {
            "vi": "Không lấy được trạng thái mới, đang thử lại…",
            "en": "Could not refresh the status; retrying…",
        },
        "page_msg_volume": {"vi": "Đã đặt âm lượng {volume}.", "en": "Volume set to {volume}."},
        "page_msg_stopped": {"vi": "Đã dừng bản tin.", "en": "Playback stopped."},
        "page_msg_nothing_to_stop": {"vi": "Không có gì đang phát.", "en": "Nothing is playing."},
        "page_msg_test_tone": {"vi": "Đang phát tiếng thử loa.", "en": "Test tone playing."},
        "page_msg_test_pattern": {
            "vi": "Đang hiện hình kiểm tra màn hình.",
            "en": "Test pattern on the display.",
        },
        "page_msg_resync": {"vi": "Đang đồng bộ lại với hub.", "en": "Resync started."},
        "page_msg_logged_out": {"vi": "Đã đăng xuất.", "en": "Logged out."},
        "page_err_emergency": {
            "vi": "Không dừng được: đây là tin khẩn cấp do tỉnh phát. Chỉ tỉnh mới huỷ được.",
            "en": "Refused: this is an emergency broadcast fired by the province; only the "
            "province can cancel it.",
        },
        "page_err_emergency_test": {
            "vi": "Đang phát tin khẩn cấp: không thể thử thiết bị lúc này.",
            "en": "An emergency is on air: no test now.",
        },
        "page_err_login_required": {
            "vi": "Cần đăng nhập để thực hiện thao tác này.",
            "en": "Log in to do this.",
        },
        "page_err_bad_login": {
            "vi": "Sai tên đăng nhập hoặc mật khẩu.",
            "en": "Wrong user name or password.",
        },
        "page_err_locked": {
            "vi": "Đăng nhập sai quá 5 lần: tạm khoá, thử lại sau {minutes} phút.",
            "en": "Too many failed logins: locked, try again in {minutes} min.",
        },
        "page_err_csrf": {
            "vi": "Biểu mẫu đã hết hạn, hãy tải lại trang và thử lại.",
            "en": "The form expired; reload the page and try again.",
        },
        "page_err_volume": {
            "vi": "Âm lượng phải là số nguyên từ 0 đến 100.",
            "en": "The volume must be a whole number from 0 to 100.",
        },
        "page_err_field": {
            "vi": 'Thiếu hoặc sai trường "{name}".',
            "en": 'Missing or bad field "{name}".',
        },
        "page_err_json": {
            "vi": "Nội dung gửi lên không phải JSON hợp lệ.",
            "en": "The request body is not valid JSON.",
        },
        "page_err_no_audio": {
            "vi": "Thiết bị này không có loa.",
            "en": "This device has no speaker.",
        },
        "page_err_no_display": {
            "vi": "Thiết bị này không có màn hình.",
            "en": "This device has no display.",
        },
        # `edge-agent local-user set` (provisioning)
        "local_user_set": {
            "vi": 'Đã đặt tài khoản trang thiết bị "{user}".',
            "en": 'Local page account "{user}" set.',
        },
        "local_user_bad": {
            "vi": "Không đặt được tài khoản: {reason} (mật khẩu ≥ 8 ký tự, có chữ hoa, chữ "
            "thường, chữ số và ký tự đặc biệt).",
            "en": "Account not set: {reason} (password ≥ 8 characters with upper, lower, digit "
            "and special).",
        },
        "local_user_no_password": {
            "vi": "Không đọc được mật khẩu: đưa mật khẩu vào stdin với --password-stdin.",
            "en": "No password read: pipe it on stdin with --password-stdin.",
        },
    }
)


def page_labels(lang: str) -> dict[str, str]:
    """The local page's labels in one language (embedded for its script)."""
    return {key: text[lang] for key, text in MESSAGES.items() if key.startswith("page_")}


# ---------------------------------------------------------------- `edge-agent simulate` (issue #8)
MESSAGES.update(
    {
        "sim_bad_arg": {
            "vi": "Tham số {name} không hợp lệ: cần {reason}.",
            "en": "Bad argument {name}: expected {reason}.",
        },
        "sim_no_password": {
            "vi": "Chưa nhập mật khẩu: đưa mật khẩu vào đầu vào chuẩn (--password-stdin).",
            "en": "No password: give it on standard input (--password-stdin).",
        },
        "sim_login_failed": {
            "vi": "Hub từ chối đăng nhập của tài khoản {user}: sai tên hoặc mật khẩu, "
            "hoặc tài khoản bị khóa.",
            "en": "The hub refused the sign-in of {user}: wrong name or password, or the "
            "account is locked.",
        },
        "sim_api_failed": {
            "vi": "Hub trả lời {status} cho {call}: {body}",
            "en": "The hub answered {status} to {call}: {body}",
        },
        "sim_enrolling": {
            "vi": "Đã đăng ký {done}/{total} thiết bị mô phỏng…",
            "en": "Enrolled {done}/{total} simulated devices…",
        },
        "sim_starting": {
            "vi": "Khởi động {devices} tác tử trong {procs} tiến trình…",
            "en": "Starting {devices} agents in {procs} processes…",
        },
        "sim_connected": {
            "vi": "{devices} thiết bị đã kết nối hub sau {seconds} s.",
            "en": "{devices} devices connected to the hub in {seconds} s.",
        },
        "sim_not_connected": {
            "vi": "Chỉ {connected}/{devices} thiết bị kết nối được hub; dừng mô phỏng.",
            "en": "Only {connected}/{devices} devices reached the hub; stopping.",
        },
        "sim_partly_connected": {
            "vi": "CẢNH BÁO: chỉ {connected}/{devices} thiết bị kết nối được hub; số liệu dưới đây"
            " tính trên các thiết bị đã kết nối.",
            "en": "WARNING: only {connected}/{devices} devices reached the hub; the figures below"
            " are for those connected.",
        },
        "sim_child_died": {
            "vi": "Một tiến trình mô phỏng đã dừng bất thường (mã {code}).",
            "en": "A simulator process died (exit code {code}).",
        },
        "sim_warmup_failed": {
            "vi": "Lần khẩn cấp khởi động không đến được {missing} thiết bị; dừng mô phỏng.",
            "en": "The warm-up emergency did not reach {missing} devices; stopping.",
        },
        "sim_nothing_played": {
            "vi": "Không thiết bị nào phát bản tin khẩn cấp.",
            "en": "No device played the emergency.",
        },
        "sim_round": {
            "vi": "Khẩn cấp {n}/{total}: p99 đến nay {p99} ms ({idle} thiết bị chưa tải lại kịch "
            "bản sau lệnh hủy).",
            "en": "Emergency {n}/{total}: p99 so far {p99} ms ({idle} devices had not fetched "
            "their manifest after the cancel).",
        },
        "sim_hub_restarted": {
            "vi": "Hub đã khởi động lại trong lúc đo; kết quả không dùng được.",
            "en": "The hub restarted during the measurement; the figures are void.",
        },
        "sim_restarting": {
            "vi": "Khởi động lại hub bằng: {cmd}",
            "en": "Restarting the hub with: {cmd}",
        },
        "sim_waiting_restart": {
            "vi": "Đang chờ: hãy khởi động lại hub ngay bây giờ (các thiết bị đang theo dõi).",
            "en": "Waiting: restart the hub now (the devices are watching).",
        },
        "sim_restart_failed": {
            "vi": "Lệnh khởi động lại hub thất bại (mã {code}): {cmd}",
            "en": "The hub restart command failed (exit code {code}): {cmd}",
        },
        "sim_no_outage": {
            "vi": "Không thiết bị nào thấy hub mất kết nối rồi trở lại.",
            "en": "No device saw the hub go away and come back.",
        },
        "sim_head": {
            "vi": "Mô phỏng {devices} thiết bị ({procs} tiến trình, {reused} dùng lại) trên hub "
            "{hub}, xã {commune}.",
            "en": "Simulated {devices} devices ({procs} processes, {reused} reused) on hub {hub},"
            " commune {commune}.",
        },
        "sim_emergency": {
            "vi": "Khẩn cấp ({emergencies} lần): từ lệnh API đến khi loa phát: trung vị {p50_ms}"
            " ms, p99 {p99_ms} ms, chậm nhất {max_ms} ms. Lệnh đến thiết bị: trung vị "
            "{arrival_p50_ms} ms, p99 {arrival_p99_ms} ms. API trả lời sau {api_p50_ms} ms "
            "(chậm nhất {api_max_ms} ms).",
            "en": "Emergency ({emergencies} times): API call to speaker playing: median {p50_ms}"
            " ms, p99 {p99_ms} ms, slowest {max_ms} ms. Command reaching the device: median "
            "{arrival_p50_ms} ms, p99 {arrival_p99_ms} ms. The API answered in {api_p50_ms} ms "
            "(slowest {api_max_ms} ms).",
        },
        "sim_missed": {
            "vi": "CẢNH BÁO: {missed} lượt thiết bị không phát bản tin khẩn cấp kịp thời.",
            "en": "WARNING: {missed} device-emergencies were not played in time.",
        },
        "sim_cancel_missed": {
            "vi": "CẢNH BÁO: {cancel_missed} lượt thiết bị không nhận được lệnh hủy khẩn cấp.",
            "en": "WARNING: {cancel_missed} device-emergencies never received the cancel.",
        },
        "sim_health": {
            "vi": "Báo cáo sức khỏe mỗi {interval_s} s trong {duration_s} s, {connected} thiết bị"
            " kết nối: hub dùng {hub_cpu_percent}% một lõi CPU (đỉnh {hub_cpu_peak_percent}%),"
            " {kb} KB bộ nhớ mỗi thiết bị ({mb} MB tổng). Gửi báo cáo: trung vị "
            "{health_p50_ms} ms, p99 {health_p99_ms} ms ({health_reports} lần, "
            "{health_failures} lỗi).",
            "en": "Health every {interval_s} s for {duration_s} s, {connected} devices connected:"
            " the hub used {hub_cpu_percent}% of one CPU core (peak {hub_cpu_peak_percent}%), "
            "{kb} KB of memory per device ({mb} MB in all). Health reports: median "
            "{health_p50_ms} ms, p99 {health_p99_ms} ms ({health_reports} sent, "
            "{health_failures} failed).",
        },
        "sim_health_10k": {
            "vi": "Ước tính cho 10.000 thiết bị báo cáo mỗi 60 s (ngoại suy tuyến tính): {cpu}% "
            "một lõi CPU, {mb} MB bộ nhớ.",
            "en": "Estimate for 10,000 devices reporting every 60 s (linear extrapolation): {cpu}% "
            "of one CPU core, {mb} MB of memory.",
        },
        "sim_outage": {
            "vi": "Hub khởi động lại: {reconnected} thiết bị kết nối lại, tất cả sau "
            "{all_back_after_hub_up_s} s kể từ khi hub hoạt động lại ({all_back_after_loss_s} s"
            " kể từ khi mất kết nối; trung vị {back_p50_after_loss_s} s). CPU hub cao nhất "
            "{hub_cpu_peak_percent}% một lõi trong lúc kết nối lại.",
            "en": "Hub restarted: {reconnected} devices reconnected, all of them "
            "{all_back_after_hub_up_s} s after the hub was back ({all_back_after_loss_s} s after"
            " the loss; median {back_p50_after_loss_s} s). Hub CPU peaked at "
            "{hub_cpu_peak_percent}% of one core during the reconnection.",
        },
        "sim_missed_outage": {
            "vi": "CẢNH BÁO: {missed} thiết bị không kết nối lại trong thời gian chờ.",
            "en": "WARNING: {missed} devices did not reconnect within the timeout.",
        },
    }
)
