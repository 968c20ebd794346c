"""Every label of the hub console, in Vietnamese (the default) and English.

One catalogue keeps the two languages side by side, so a label added in one cannot be
forgotten in the other (a test checks both exist and that templates use only known keys).
"""

from __future__ import annotations

from typing import Literal

from .labels import admin as labels_admin
from .labels import audit_words as labels_audit_words
from .labels import bulletins as labels_bulletins
from .labels import devices as labels_devices
from .labels import forms as labels_forms
from .labels import home as labels_home
from .labels import maintenance as labels_maintenance
from .labels import releases as labels_releases
from .labels import say as labels_say

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"

_CORE: dict[str, dict[Lang, str]] = {
    "app.name": {"vi": "Loa — Bảng điều khiển", "en": "Loa — Console"},
    "app.short": {"vi": "Loa", "en": "Loa"},
    "lang.switch": {"vi": "English", "en": "Tiếng Việt"},
    "nav.dashboard": {"vi": "Tổng quan", "en": "Dashboard"},
    "nav.devices": {"vi": "Thiết bị", "en": "Devices"},
    "nav.bulletins": {"vi": "Bản tin", "en": "Bulletins"},
    "nav.emergency": {"vi": "Khẩn cấp", "en": "Emergency"},
    "nav.review": {"vi": "Thẩm định", "en": "Review"},
    "nav.communes": {"vi": "Xã, phường", "en": "Communes"},
    "nav.reports": {"vi": "Báo cáo", "en": "Reports"},
    "nav.users": {"vi": "Tài khoản", "en": "Users"},
    "nav.audit": {"vi": "Nhật ký", "en": "Audit log"},
    "unit.province": {"vi": "Tỉnh (Sở)", "en": "Province"},
    "nav.skip": {"vi": "Bỏ qua, đến nội dung chính", "en": "Skip to the content"},
    "nav.logout": {"vi": "Đăng xuất", "en": "Log out"},
    "nav.signed_in_as": {"vi": "Đang đăng nhập:", "en": "Signed in as"},
    "page.first": {"vi": "← Trang đầu", "en": "← First page"},
    "page.next": {"vi": "Trang sau →", "en": "Next page →"},
    "page.older": {"vi": "Cũ hơn →", "en": "Older →"},
    "login.title": {"vi": "Đăng nhập", "en": "Log in"},
    "login.username": {"vi": "Tên đăng nhập", "en": "Username"},
    "login.password": {"vi": "Mật khẩu", "en": "Password"},
    "login.submit": {"vi": "Đăng nhập", "en": "Log in"},
    # One message for a wrong name, a wrong password and a locked account (names must not be
    # enumerable). A refusal while locked does not extend the lock, so "now + the lockout"
    # is when every temporarily locked account is open again: true for all, telling nothing.
    "login.failed": {
        "vi": "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đang bị tạm khoá. Sau {attempts}"
        " lần nhập sai liên tiếp, tài khoản bị khoá {minutes} phút: tài khoản bị khoá tạm thời"
        " sẽ mở lại chậm nhất lúc {until}. Tài khoản bị quản trị viên khoá cần được quản trị"
        " viên mở lại.",
        "en": "Wrong username or password, or the account is locked. After {attempts} failures"
        " in a row an account is locked for {minutes} minutes: a temporarily locked account"
        " opens again at {until} at the latest. An account locked by an administrator must be"
        " unlocked by one.",
    },
    "password.title": {"vi": "Đổi mật khẩu", "en": "Change password"},
    "password.forced": {
        "vi": "Bạn cần đổi mật khẩu trước khi tiếp tục.",
        "en": "You must change your password before continuing.",
    },
    "password.old": {"vi": "Mật khẩu hiện tại", "en": "Current password"},
    "password.new": {"vi": "Mật khẩu mới", "en": "New password"},
    "password.repeat": {"vi": "Nhập lại mật khẩu mới", "en": "Repeat the new password"},
    "password.rules": {
        "vi": "Ít nhất 8 ký tự, có chữ hoa, chữ thường, chữ số và ký tự đặc biệt;"
        " không chứa tên đăng nhập.",
        "en": "At least 8 characters with upper- and lower-case letters, a digit and a special"
        " character; not containing the username.",
    },
    "password.submit": {"vi": "Lưu mật khẩu mới", "en": "Save the new password"},
    "password.mismatch": {
        "vi": "Hai lần nhập mật khẩu mới không khớp.",
        "en": "The two new passwords differ.",
    },
    "password.wrong_old": {
        "vi": "Mật khẩu hiện tại không đúng.",
        "en": "The current password is wrong.",
    },
    "password.weak": {
        "vi": "Mật khẩu mới chưa đủ mạnh.",
        "en": "The new password is too weak.",
    },
    "password.reused": {
        "vi": "Mật khẩu mới phải khác các mật khẩu đã dùng gần đây.",
        "en": "The new password must differ from recent ones.",
    },
    "dash.title": {"vi": "Tổng quan", "en": "Dashboard"},
    "dash.online": {"vi": "Đang trực tuyến", "en": "Online"},
    "dash.offline": {"vi": "Mất kết nối", "en": "Offline"},
    "dash.total": {"vi": "Tổng số thiết bị", "en": "Devices in total"},
    "dash.playing": {"vi": "Đang phát", "en": "Playing now"},
    "dash.nothing_playing": {
        "vi": "Không thiết bị nào đang phát.",
        "en": "No device is playing.",
    },
    "dash.emergencies_today": {"vi": "Tin khẩn cấp hôm nay", "en": "Today's emergencies"},
    "dash.no_emergencies": {
        "vi": "Hôm nay chưa có tin khẩn cấp.",
        "en": "No emergency today.",
    },
    "dev.title": {"vi": "Thiết bị", "en": "Devices"},
    "dev.name": {"vi": "Tên", "en": "Name"},
    "dev.commune": {"vi": "Xã", "en": "Commune"},
    "dev.kind": {"vi": "Loại", "en": "Kind"},
    "dev.online": {"vi": "Trạng thái", "en": "Status"},
    "dev.last_seen": {"vi": "Lần cuối liên lạc", "en": "Last seen"},
    "dev.now_playing": {"vi": "Đang phát", "en": "Now playing"},
    "dev.never": {"vi": "Chưa từng", "en": "Never"},
    "dev.not_enrolled": {"vi": "Chưa đăng ký", "en": "Not enrolled"},
    "dev.none": {"vi": "Chưa có thiết bị nào.", "en": "No devices yet."},
    # The terms: "Tin viết" is what is typed into the form (read aloud, shown on boards), a
    # "Tài liệu" a file sent as it is (PDF, Word); "Ký tự" (characters) named neither. A
    # board is a "Bảng tin điện tử" whether LED or LCD: the profile says which.
    "kind.speaker": {"vi": "Loa", "en": "Loudspeaker"},
    "kind.board": {"vi": "Bảng tin điện tử", "en": "Display board"},
    "kind.text": {"vi": "Tin viết", "en": "Written text"},
    "kind.audio": {"vi": "Âm thanh", "en": "Audio"},
    "kind.image": {"vi": "Hình ảnh", "en": "Image"},
    "kind.document": {"vi": "Tài liệu (PDF, Word)", "en": "Document (PDF, Word)"},
    "kind.video": {"vi": "Video", "en": "Video"},
    "status.online": {"vi": "Trực tuyến", "en": "Online"},
    "status.offline": {"vi": "Mất kết nối", "en": "Offline"},
    "bul.title": {"vi": "Bản tin", "en": "Bulletins"},
    "bul.filter": {"vi": "Lọc theo trạng thái", "en": "Filter by state"},
    "bul.filter_submit": {"vi": "Lọc", "en": "Filter"},
    "bul.all_states": {"vi": "Tất cả", "en": "All"},
    "bul.col_title": {"vi": "Tiêu đề", "en": "Title"},
    "bul.col_kind": {"vi": "Loại", "en": "Kind"},
    "bul.col_priority": {"vi": "Mức ưu tiên", "en": "Priority"},
    "bul.col_state": {"vi": "Trạng thái", "en": "State"},
    "bul.col_unit": {"vi": "Đơn vị", "en": "Unit"},
    "bul.col_created": {"vi": "Ngày tạo", "en": "Created"},
    "bul.none": {"vi": "Không có bản tin nào.", "en": "No bulletins."},
    "state.draft": {"vi": "Bản nháp", "en": "Draft"},
    "state.submitted": {"vi": "Chờ thẩm định", "en": "Awaiting review"},
    "state.returned": {"vi": "Bị trả lại", "en": "Returned"},
    "state.published": {"vi": "Đã phát hành", "en": "Published"},
    "state.cancelled": {"vi": "Đã huỷ", "en": "Cancelled"},
    "state.deleted": {"vi": "Đã xoá", "en": "Deleted"},
    "priority.emergency": {"vi": "Khẩn cấp", "en": "Emergency"},
    "priority.priority": {"vi": "Ưu tiên", "en": "Priority"},
    "priority.normal": {"vi": "Thông thường", "en": "Normal"},
    "outcome.completed": {"vi": "Đã phát xong", "en": "Completed"},
    "outcome.preempted": {"vi": "Bị ngắt", "en": "Preempted"},
    "outcome.stopped": {"vi": "Đã dừng", "en": "Stopped"},
    "outcome.failed": {"vi": "Lỗi", "en": "Failed"},
    "em.title": {"vi": "Phát tin khẩn cấp", "en": "Broadcast an emergency"},
    "em.warning": {
        "vi": "Tin khẩn cấp được phát NGAY LẬP TỨC trên mọi loa và bảng tin được chọn,"
        " ngắt chương trình đang phát.",
        "en": "An emergency plays IMMEDIATELY on every targeted loudspeaker and board,"
        " interrupting whatever is playing.",
    },
    "em.headline": {"vi": "Tiêu đề", "en": "Headline"},
    "em.text": {"vi": "Nội dung", "en": "Message"},
    "em.target": {"vi": "Phạm vi phát", "en": "Target"},
    "em.whole_province": {"vi": "Toàn tỉnh", "en": "The whole province"},
    "em.own_commune": {"vi": "Toàn bộ xã của bạn", "en": "Your whole commune"},
    "em.minutes": {"vi": "Hiệu lực (phút)", "en": "Valid for (minutes)"},
    "em.repeats": {"vi": "Số lần phát", "en": "Times to play"},
    "em.interval": {"vi": "Cách nhau (giây)", "en": "Seconds between airings"},
    "em.until_cancelled": {
        "vi": "Phát lặp lại cho đến khi dừng (trong thời gian hiệu lực)",
        "en": "Repeat until stopped (within the valid time)",
    },
    "em.airings_help": {
        "vi": "Loa phát tin theo số lần đã chọn, cách nhau số giây đã chọn; bảng tin hiển thị"
        " tin suốt thời gian hiệu lực.",
        "en": "Loudspeakers air it the chosen number of times, that many seconds apart; boards"
        " show it for as long as it is valid.",
    },
    "em.airings": {"vi": "Phát trên loa", "en": "On loudspeakers"},
    "em.times": {"vi": "lần", "en": "times"},
    "em.until_cancelled_short": {"vi": "lặp lại đến khi dừng", "en": "until stopped"},
    "em.every": {"vi": "cách nhau", "en": "every"},
    "em.seconds": {"vi": "giây", "en": "seconds"},
    "em.valid_until": {"vi": "hiệu lực đến", "en": "valid until"},
    "em.errors_title": {"vi": "Chưa phát được, hãy sửa:", "en": "Not broadcast; please fix:"},
    "em.err.invalid": {
        "vi": "Giá trị không hợp lệ.",
        "en": "This value is not valid.",
    },
    "em.confirm_box": {
        "vi": "Tôi xác nhận đây là tin khẩn cấp và cần phát ngay.",
        "en": "I confirm this is an emergency to broadcast now.",
    },
    "em.confirm_dialog": {
        "vi": "Phát tin khẩn cấp ngay bây giờ?",
        "en": "Broadcast this emergency now?",
    },
    "em.submit": {"vi": "PHÁT TIN KHẨN CẤP", "en": "BROADCAST EMERGENCY"},
    "em.not_confirmed": {
        "vi": "Hãy đánh dấu ô xác nhận trước khi phát.",
        "en": "Tick the confirmation box before broadcasting.",
    },
    "em.needs_text": {
        "vi": "Cần nhập tiêu đề và nội dung.",
        "en": "Give a headline and a message.",
    },
    "em.active": {"vi": "Tin khẩn cấp đang hiệu lực", "en": "Active emergencies"},
    "em.none_active": {
        "vi": "Không có tin khẩn cấp nào đang hiệu lực.",
        "en": "No active emergency.",
    },
    "em.open": {"vi": "Theo dõi", "en": "Follow"},
    "em.status_title": {"vi": "Theo dõi tin khẩn cấp", "en": "Emergency progress"},
    "em.started_count": {"vi": "Thiết bị đã bắt đầu phát", "en": "Devices that started"},
    "em.targeted": {"vi": "Thiết bị nhận tin", "en": "Targeted devices"},
    "em.started": {"vi": "Đã phát", "en": "Started"},
    "em.not_started": {"vi": "Chưa phát", "en": "Not yet"},
    "em.started_at": {"vi": "Bắt đầu lúc", "en": "Started at"},
    "em.outcome": {"vi": "Kết quả", "en": "Outcome"},
    "em.no_devices": {
        "vi": "Không có thiết bị nào trong phạm vi.",
        "en": "No device in the target.",
    },
    "em.cancel": {"vi": "Dừng tin khẩn cấp", "en": "Stop the emergency"},
    "em.cancel_dialog": {
        "vi": "Dừng tin khẩn cấp này trên mọi thiết bị?",
        "en": "Stop this emergency on every device?",
    },
    "em.cancelled": {"vi": "Tin khẩn cấp đã dừng.", "en": "The emergency has been stopped."},
    "em.refresh": {"vi": "Làm mới", "en": "Refresh"},
    "em.back": {"vi": "Quay lại", "en": "Back"},
    "err.title": {"vi": "Không thực hiện được", "en": "Could not do that"},
    "err.forbidden": {
        "vi": "Tài khoản của bạn không có quyền này.",
        "en": "Your account may not do this.",
    },
    "err.not_found": {"vi": "Không tìm thấy.", "en": "Not found."},
    "err.csrf": {
        "vi": "Biểu mẫu đã hết hạn. Hãy tải lại trang và thử lại.",
        "en": "The form has expired. Reload the page and try again.",
    },
    "err.conflict": {
        "vi": "Trạng thái đã thay đổi; hãy tải lại trang.",
        "en": "The state has changed; reload the page.",
    },
    "err.generic": {"vi": "Đã xảy ra lỗi.", "en": "Something went wrong."},
    "err.home": {"vi": "Về trang tổng quan", "en": "Back to the dashboard"},
}


def _merge(*parts: dict[str, dict[str, str]]) -> dict[str, dict[Lang, str]]:
    """One catalogue from the per-area label files; a key defined twice is a bug, not a choice."""
    merged: dict[str, dict[Lang, str]] = {}
    for part in parts:
        for key, labels in part.items():
            if key in merged:
                raise RuntimeError(f"label {key!r} is defined twice")
            merged[key] = labels  # type: ignore[assignment]
    return merged


CATALOGUE: dict[str, dict[Lang, str]] = _merge(
    _CORE,  # type: ignore[arg-type]
    labels_bulletins.LABELS,
    labels_admin.LABELS,
    labels_devices.LABELS,
    labels_maintenance.LABELS,
    labels_say.LABELS,
    labels_home.LABELS,
    labels_forms.LABELS,
    labels_audit_words.LABELS,
    labels_releases.LABELS,
)


def translate(key: str, lang: Lang) -> str:
    """The label in `lang`; an unknown key raises, so a typo fails the page tests."""
    return CATALOGUE[key][lang]


def pick_lang(value: str | None) -> Lang:
    return "en" if value == "en" else DEFAULT_LANG
