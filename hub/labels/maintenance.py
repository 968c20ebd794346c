"""Labels of maintenance and switch-over notices (hub/console_maintenance.py, the banner)."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "nav.maintenance": {"vi": "Bảo trì", "en": "Maintenance"},
    "mt.banner": {"vi": "Thông báo bảo trì hệ thống", "en": "System maintenance notices"},
    "mt.title": {
        "vi": "Thông báo bảo trì, chuyển hệ thống dự phòng",
        "en": "Maintenance and switch-over notices",
    },
    "mt.intro": {
        "vi": "Thông báo hiện trên mọi trang của mọi tài khoản cho đến khi kết thúc,"
        " và được ghi vào nhật ký.",
        "en": "A notice shows on every page for every user until it ends, and is recorded in"
        " the audit log.",
    },
    "mt.kind.maintenance": {"vi": "Bảo trì, nâng cấp hệ thống", "en": "Planned maintenance"},
    "mt.kind.switchover": {
        "vi": "Chuyển sang hệ thống dự phòng",
        "en": "Switch to the standby hub",
    },
    "mt.from": {"vi": "từ", "en": "from"},
    "mt.to": {"vi": "đến", "en": "to"},
    "mt.announce_title": {"vi": "Thông báo mới", "en": "New notice"},
    "mt.field.kind": {"vi": "Loại", "en": "Kind"},
    "mt.field.starts_at": {"vi": "Bắt đầu (giờ Việt Nam)", "en": "Starts (Vietnam time)"},
    "mt.field.ends_at": {"vi": "Kết thúc dự kiến", "en": "Expected end"},
    "mt.field.reason": {"vi": "Lý do, ảnh hưởng", "en": "Reason and effect"},
    "mt.field.consent_ref": {
        "vi": "Văn bản đồng ý của đơn vị quản lý",
        "en": "Managing unit's written consent",
    },
    "mt.consent_hint": {
        "vi": "Số, ngày của văn bản (Quy chế Thái Nguyên, Điều 9 khoản 2).",
        "en": "Its number and date (Thái Nguyên rules, art. 9.2).",
    },
    "mt.rule": {
        "vi": "Việc tạm ngừng để bảo trì phải được thông báo trước ít nhất 48 giờ. Thông báo"
        " muộn hơn vẫn được đăng, kèm cảnh báo.",
        "en": "A pause for maintenance must be announced at least 48 hours ahead. A later"
        " notice is still posted, with a warning.",
    },
    "mt.submit": {"vi": "Đăng thông báo", "en": "Post the notice"},
    "mt.announced": {"vi": "Đã đăng thông báo.", "en": "The notice is posted."},
    "mt.warn.short_notice": {
        "vi": "Thông báo trước chưa đủ 48 giờ (Quy chế Thái Nguyên, Điều 9 khoản 2):"
        " hãy báo ngay cho các đơn vị liên quan.",
        "en": "Less than 48 hours' notice (Thái Nguyên rules, art. 9.2): tell the units"
        " concerned at once.",
    },
    "mt.warn.no_consent": {
        "vi": "Chưa ghi văn bản đồng ý của đơn vị quản lý.",
        "en": "No written consent of the managing unit is recorded.",
    },
    "mt.warn_short.short_notice": {"vi": "Dưới 48 giờ", "en": "Under 48 hours"},
    "mt.warn_short.no_consent": {"vi": "Chưa có văn bản đồng ý", "en": "No written consent"},
    "mt.errors_title": {"vi": "Chưa đăng được thông báo:", "en": "The notice was not posted:"},
    "mt.form": {"vi": "Biểu mẫu", "en": "Form"},
    "mt.err.invalid": {"vi": "giá trị không hợp lệ", "en": "not a valid value"},
    "mt.err.past": {"vi": "thời điểm bắt đầu đã qua", "en": "the start is in the past"},
    "mt.err.too_far": {"vi": "bắt đầu quá một năm nữa", "en": "the start is over a year ahead"},
    "mt.err.end_before_start": {
        "vi": "kết thúc phải sau lúc bắt đầu",
        "en": "the end must come after the start",
    },
    "mt.err.too_long": {
        "vi": "một thông báo dài tối đa 14 ngày",
        "en": "a notice lasts 14 days at most",
    },
    "mt.list_title": {"vi": "Các thông báo", "en": "Notices"},
    "mt.when": {"vi": "Thời gian", "en": "When"},
    "mt.by": {"vi": "Người đăng", "en": "Posted by"},
    "mt.state": {"vi": "Trạng thái", "en": "State"},
    "mt.shown": {"vi": "Đang hiển thị", "en": "Shown"},
    "mt.over": {"vi": "Đã kết thúc", "en": "Over"},
    "mt.withdrawn": {"vi": "Đã rút", "en": "Withdrawn"},
    "mt.withdraw": {"vi": "Rút thông báo", "en": "Withdraw"},
    "mt.withdraw_confirm": {
        "vi": "Rút thông báo này? Nó sẽ không còn hiện với người dùng.",
        "en": "Withdraw this notice? Users will no longer see it.",
    },
    "mt.none": {"vi": "Chưa có thông báo nào.", "en": "No notices yet."},
}
