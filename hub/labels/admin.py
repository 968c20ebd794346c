"""Labels for communes, users, audit and reports."""

from ..categories import CATEGORIES

_COMMUNES: dict[str, dict[str, str]] = {
    "cm.title": {"vi": "Xã, phường", "en": "Communes"},
    "cm.none": {"vi": "Chưa có xã nào.", "en": "No communes yet."},
    "cm.code": {"vi": "Mã xã", "en": "Code"},
    "cm.code_hint": {
        "vi": "Mã đơn vị hành chính (ví dụ 00001); chữ, số, dấu _ . -",
        "en": "Administrative code (e.g. 00001); letters, digits, _ . -",
    },
    "cm.name": {"vi": "Tên xã", "en": "Name"},
    "cm.devices": {"vi": "Thiết bị", "en": "Devices"},
    "cm.volume": {"vi": "Âm lượng (0–100)", "en": "Volume (0–100)"},
    "cm.windows": {"vi": "Khung giờ phát sóng", "en": "Broadcast windows"},
    "cm.windows_speaker": {"vi": "Khung giờ cho loa", "en": "Loudspeaker windows"},
    "cm.windows_board": {"vi": "Khung giờ cho bảng tin", "en": "Bulletin board windows"},
    "cm.no_windows": {"vi": "Chưa đặt", "en": "None set"},
    "cm.create_title": {"vi": "Thêm xã mới", "en": "Add a commune"},
    "cm.create_submit": {"vi": "Thêm xã", "en": "Add the commune"},
    "cm.back": {"vi": "← Danh sách xã", "en": "← All communes"},
    "cm.windows_title": {"vi": "Khung giờ phát sóng hằng ngày", "en": "Daily broadcast windows"},
    "cm.windows_help": {
        "vi": "Áp dụng mọi ngày theo giờ Việt Nam, trừ các thứ và ngày có khung giờ riêng"
        " (xem “Ngày đặc biệt”). Khung kéo dài sang hôm sau phải chọn “qua nửa đêm”; các khung"
        " không được trùng nhau. Ngoài các khung giờ chỉ phát tin khẩn cấp.",
        "en": "Every day, Vietnam time, except weekdays and dates with their own windows (see"
        " “Special days”). A window running into the next day must say “past midnight”;"
        " windows may not overlap. Outside the windows only emergencies play.",
    },
    "cm.start": {"vi": "Từ", "en": "From"},
    "cm.days_title": {"vi": "Ngày đặc biệt", "en": "Special days"},
    "cm.days_back": {"vi": "← Khung giờ hằng ngày", "en": "← Daily windows"},
    "cm.days_help": {
        "vi": "Viết khung giờ theo dạng 05:30–06:30, 17:00–18:00. Ngày ngoại lệ được ưu tiên"
        " hơn khung giờ riêng theo thứ, khung giờ riêng theo thứ ưu tiên hơn khung giờ hằng"
        " ngày. Khung qua nửa đêm thuộc về ngày nó bắt đầu.",
        "en": "Write windows as 05:30–06:30, 17:00–18:00. A dated exception wins over a"
        " weekday's own windows, which win over every day's. A window past midnight belongs to"
        " the day it starts.",
    },
    "cm.days_saved_weekly": {
        "vi": "Đã lưu khung giờ theo thứ. Thiết bị của xã sẽ nhận lịch mới.",
        "en": "Weekday windows saved. The commune's devices get the new schedule.",
    },
    "cm.days_saved_exception": {
        "vi": "Đã thêm ngày ngoại lệ. Thiết bị của xã sẽ nhận lịch mới.",
        "en": "Exception added. The commune's devices get the new schedule.",
    },
    "cm.days_saved_removed": {"vi": "Đã bỏ ngày ngoại lệ.", "en": "Exception removed."},
    "cm.weekly_title": {"vi": "Khung giờ riêng theo thứ", "en": "Weekdays with their own windows"},
    "cm.weekly_help": {
        "vi": "Đánh dấu “Dùng khung giờ riêng” để thứ đó không theo khung giờ hằng ngày; để"
        " trống ô thì thứ đó chỉ phát tin khẩn cấp.",
        "en": "Tick “Own windows” for a weekday not to follow the daily windows; an empty box"
        " means only emergencies that day.",
    },
    "cm.weekday.1": {"vi": "Thứ Hai", "en": "Monday"},
    "cm.weekday.2": {"vi": "Thứ Ba", "en": "Tuesday"},
    "cm.weekday.3": {"vi": "Thứ Tư", "en": "Wednesday"},
    "cm.weekday.4": {"vi": "Thứ Năm", "en": "Thursday"},
    "cm.weekday.5": {"vi": "Thứ Sáu", "en": "Friday"},
    "cm.weekday.6": {"vi": "Thứ Bảy", "en": "Saturday"},
    "cm.weekday.7": {"vi": "Chủ nhật", "en": "Sunday"},
    "cm.own_windows": {"vi": "Dùng khung giờ riêng", "en": "Own windows"},
    "cm.overnight_confirm": {
        "vi": "Khung có giờ kết thúc sớm hơn giờ bắt đầu kéo dài qua nửa đêm",
        "en": "Windows ending before they start run past midnight",
    },
    "cm.exceptions_title": {"vi": "Ngày ngoại lệ (ngày lễ, sự kiện)", "en": "Dated exceptions"},
    "cm.exceptions_help": {
        "vi": "Trong ngày ngoại lệ chỉ các khung giờ ghi ở đây được phát; để trống là chỉ phát"
        " tin khẩn cấp (ví dụ ngày lễ).",
        "en": "On an exception date only the windows given here air; empty means only"
        " emergencies (a holiday, say).",
    },
    "cm.exceptions_none": {"vi": "Chưa có ngày ngoại lệ.", "en": "No exceptions."},
    "cm.emergency_only": {"vi": "chỉ khẩn cấp", "en": "emergencies only"},
    "cm.ex_date": {"vi": "Ngày", "en": "Date"},
    "cm.ex_note": {"vi": "Ghi chú", "en": "Note"},
    "cm.ex_note_hint": {"vi": "Quốc khánh, hội làng…", "en": "National Day, a festival…"},
    "cm.ex_empty_hint": {"vi": "để trống: chỉ khẩn cấp", "en": "empty: emergencies only"},
    "cm.ex_add": {"vi": "Thêm ngày ngoại lệ", "en": "Add the exception"},
    "cm.ex_remove": {"vi": "Bỏ", "en": "Remove"},
    "cm.ex_remove_confirm": {
        "vi": "Bỏ ngày ngoại lệ này? Ngày đó sẽ phát theo khung giờ thường.",
        "en": "Remove this exception? That date follows the usual windows again.",
    },
    "cm.err.date": {"vi": "hãy chọn ngày.", "en": "choose the date."},
    "cm.err.same_date": {
        "vi": "ngày này đã có ngoại lệ; hãy bỏ ngoại lệ cũ trước.",
        "en": "this date already has an exception; remove it first.",
    },
    "cm.overnight": {"vi": "Kết thúc", "en": "Ends"},
    "cm.same_day": {"vi": "trong ngày", "en": "the same day"},
    "cm.past_midnight": {"vi": "qua nửa đêm (hôm sau)", "en": "past midnight (next day)"},
    "cm.err.overnight": {
        "vi": "giờ kết thúc sớm hơn giờ bắt đầu: nếu khung giờ kéo dài sang hôm sau, hãy chọn"
        " “qua nửa đêm”; nếu không, hãy sửa lại giờ.",
        "en": "the end is before the start: if the window runs into the next day choose"
        " “past midnight”; otherwise correct the times.",
    },
    "cm.err.overlap": {
        "vi": "khung giờ này trùng với một khung giờ khác cùng loại thiết bị.",
        "en": "this window overlaps another one for the same devices.",
    },
    "cm.end": {"vi": "Đến", "en": "To"},
    "cm.row": {"vi": "dòng", "en": "row"},
    "cm.add_row": {"vi": "+ Thêm khung giờ", "en": "+ Add a window"},
    "cm.remove_row": {"vi": "Bỏ", "en": "Remove"},
    "cm.remove_help": {
        "vi": "Để bỏ một khung giờ, xoá trống cả hai ô giờ của dòng đó rồi lưu; điền vào dòng"
        " trống để thêm.",
        "en": "To remove a window, clear both of its times and save; fill the empty row to add"
        " one.",
    },
    "cm.save": {"vi": "Lưu thay đổi", "en": "Save changes"},
    "cm.saved_windows": {
        "vi": "Đã lưu. Thiết bị của xã sẽ nhận lịch mới.",
        "en": "Saved. The commune's devices get the new schedule.",
    },
    "cm.saved_order": {"vi": "Đã lưu thứ tự phát.", "en": "The running order is saved."},
    "cm.saved_say": {"vi": "Đã lưu lựa chọn của xã.", "en": "The commune's choice is saved."},
    "cm.saved_created": {
        "vi": "Đã thêm xã. Hãy đặt khung giờ phát sóng.",
        "en": "Commune added. Now set its broadcast windows.",
    },
    "cm.updated": {"vi": "Cập nhật lần cuối", "en": "Last changed"},
    "cm.order_title": {
        "vi": "Thứ tự phát các bản tin ưu tiên",
        "en": "Running order of priority bulletins",
    },
    "cm.order_help": {
        "vi": "Khi bản tin ưu tiên của tỉnh và của xã trùng giờ, xã quyết định thứ tự phát."
        " Bản tin đứng trên phát trước.",
        "en": "When provincial and commune priority bulletins collide, the commune decides the"
        " order. The one on top airs first.",
    },
    "cm.order_empty": {
        "vi": "Không có bản tin ưu tiên nào đang hiệu lực ở xã này.",
        "en": "No priority bulletin is currently valid in this commune.",
    },
    "cm.move_up": {"vi": "↑ Lên", "en": "↑ Up"},
    "cm.move_down": {"vi": "↓ Xuống", "en": "↓ Down"},
    "cm.errors_title": {"vi": "Chưa lưu được, hãy sửa:", "en": "Not saved; please fix:"},
    "cm.form": {"vi": "Biểu mẫu", "en": "Form"},
    "cm.err.window": {
        "vi": "giờ phải theo dạng HH:MM (00:00–23:59), có cả giờ bắt đầu và kết thúc, và hai"
        " giờ phải khác nhau.",
        "en": "times are HH:MM (00:00–23:59), both start and end are needed, and they must differ.",
    },
    "cm.err.name": {"vi": "cần nhập tên (tối đa 200 ký tự).", "en": "give a name (≤ 200)."},
    "cm.err.code": {
        "vi": "mã gồm 1–32 chữ, số hoặc dấu _ . -",
        "en": "1–32 letters, digits, _ . -",
    },
    "cm.err.volume": {
        "vi": "âm lượng là số nguyên từ 0 đến 100.",
        "en": "the volume is a whole number from 0 to 100.",
    },
    "cm.err.exists": {"vi": "mã xã này đã có.", "en": "this code is already taken."},
    "cm.err.invalid": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
}

_USERS: dict[str, dict[str, str]] = {
    "us.title": {"vi": "Tài khoản", "en": "Accounts"},
    "us.username": {"vi": "Tên đăng nhập", "en": "Username"},
    "us.username_hint": {
        "vi": "Tên riêng của từng người (chữ thường, số, . _ -), không dùng tên chung như"
        " \u201cadmin\u201d.",
        "en": "Each person's own name (lower case, digits, . _ -); never a shared name like"
        " \u201cadmin\u201d.",
    },
    "us.role": {"vi": "Vai trò", "en": "Role"},
    "us.role_choose": {"vi": "— Chọn vai trò —", "en": "— Choose a role —"},
    "us.role.admin": {"vi": "Quản trị hệ thống", "en": "Administrator"},
    "us.role.reviewer": {"vi": "Thẩm định, phát hành", "en": "Reviewer"},
    "us.role.contributor": {"vi": "Đơn vị cung cấp tin", "en": "Contributing agency"},
    "us.role.commune_operator": {"vi": "Cán bộ xã", "en": "Commune operator"},
    "us.role.technician": {"vi": "Kỹ thuật viên", "en": "Technician"},
    "us.role.viewer": {"vi": "Chỉ xem", "en": "Viewer"},
    "us.unit": {"vi": "Đơn vị", "en": "Unit"},
    "us.unit_hint": {
        "vi": "Mã xã cho cán bộ xã; mã cơ quan cho đơn vị cung cấp tin; để trống hoặc"
        " \u201cprovince\u201d cho cấp tỉnh.",
        "en": "A commune code for commune operators; the agency's code for contributors; empty"
        " or \u201cprovince\u201d for the province.",
    },
    "us.state": {"vi": "Trạng thái", "en": "State"},
    "us.state.active": {"vi": "Đang hoạt động", "en": "Active"},
    "us.state.locked": {"vi": "Đã khoá", "en": "Locked"},
    "us.state.locked_until": {"vi": "Tạm khoá đến", "en": "Locked until"},
    "us.state.disabled": {"vi": "Đã vô hiệu hoá", "en": "Disabled"},
    "us.state.must_change": {"vi": "Phải đổi mật khẩu", "en": "Must change password"},
    "us.last_login": {"vi": "Đăng nhập gần nhất", "en": "Last login"},
    "us.never": {"vi": "Chưa đăng nhập", "en": "Never"},
    "us.password_expires": {"vi": "Mật khẩu hết hạn", "en": "Password expires"},
    "us.password_changed": {"vi": "Đổi mật khẩu lần cuối", "en": "Password last changed"},
    "us.created": {"vi": "Ngày tạo", "en": "Created"},
    "us.create_title": {"vi": "Cấp tài khoản mới", "en": "Issue a new account"},
    "us.create_submit": {"vi": "Tạo tài khoản", "en": "Create the account"},
    "us.temp_password": {"vi": "Mật khẩu tạm thời", "en": "Temporary password"},
    "us.policy": {
        "vi": "Ít nhất 8 ký tự, có chữ hoa, chữ thường, chữ số và ký tự đặc biệt; không chứa"
        " tên đăng nhập. Người dùng phải đổi mật khẩu ở lần đăng nhập đầu và ít nhất 6 tháng"
        " một lần.",
        "en": "At least 8 characters with upper- and lower-case letters, a digit and a special"
        " character; not containing the username. The holder must change it at first login"
        " and at least every 6 months.",
    },
    "us.back": {"vi": "← Danh sách tài khoản", "en": "← All accounts"},
    "us.detail_title": {"vi": "Tài khoản", "en": "Account"},
    "us.access_title": {"vi": "Khoá / mở khoá", "en": "Lock / unlock"},
    "us.lock": {"vi": "Khoá tài khoản", "en": "Lock the account"},
    "us.lock_help": {
        "vi": "Tài khoản bị khoá không đăng nhập được cho đến khi mở khoá; mọi phiên đang mở"
        " kết thúc ngay.",
        "en": "A locked account cannot log in until unlocked; its open sessions end at once.",
    },
    "us.unlock": {"vi": "Mở khoá", "en": "Unlock"},
    "us.unlock_help": {
        "vi": "Mở khoá cũng xoá khoá tạm thời do nhập sai mật khẩu nhiều lần.",
        "en": "Unlocking also clears a lockout after failed logins.",
    },
    "us.reset_title": {"vi": "Đặt lại mật khẩu", "en": "Reset the password"},
    "us.reset_own": {
        "vi": "Mật khẩu của chính bạn không đặt lại ở đây; hãy đổi nó (cần mật khẩu hiện tại):",
        "en": "Your own password is not reset here; change it (your current one is asked):",
    },
    "us.reset_help": {
        "vi": "Mọi phiên của tài khoản kết thúc; người dùng phải đổi mật khẩu khi đăng nhập.",
        "en": "Every session of the account ends; the holder must change it at login.",
    },
    "us.reset_submit": {"vi": "Đặt mật khẩu tạm thời", "en": "Set the temporary password"},
    "us.disable_title": {"vi": "Vô hiệu hoá vĩnh viễn", "en": "Disable for good"},
    "us.disable_warning": {
        "vi": "Dùng khi người dùng chuyển công tác, thôi việc hoặc nghỉ hưu. Không thể hoàn"
        " tác; nhật ký vẫn giữ tên tài khoản.",
        "en": "For a person who moved post, left or retired. It cannot be undone; the audit"
        " log keeps the name.",
    },
    "us.disable_confirm": {
        "vi": "Tôi xác nhận vô hiệu hoá vĩnh viễn tài khoản này.",
        "en": "I confirm disabling this account for good.",
    },
    "us.disable_dialog": {
        "vi": "Vô hiệu hoá vĩnh viễn tài khoản này?",
        "en": "Disable this account for good?",
    },
    "us.disable_submit": {"vi": "Vô hiệu hoá", "en": "Disable"},
    "us.disabled_note": {
        "vi": "Tài khoản đã bị vô hiệu hoá vĩnh viễn.",
        "en": "This account is disabled for good.",
    },
    "us.done.created": {
        "vi": "Đã tạo tài khoản. Hãy trao mật khẩu tạm thời cho đúng người.",
        "en": "Account created. Hand the temporary password to its holder in person.",
    },
    "us.done.lock": {"vi": "Đã khoá tài khoản.", "en": "The account is locked."},
    "us.done.unlock": {"vi": "Đã mở khoá tài khoản.", "en": "The account is unlocked."},
    "us.done.disable": {"vi": "Đã vô hiệu hoá tài khoản.", "en": "The account is disabled."},
    "us.done.password": {
        "vi": "Đã đặt mật khẩu tạm thời.",
        "en": "The temporary password is set.",
    },
    "us.errors_title": {"vi": "Chưa thực hiện được, hãy sửa:", "en": "Not done; please fix:"},
    "us.form": {"vi": "Biểu mẫu", "en": "Form"},
    "us.err.weak_password": {
        "vi": "mật khẩu chưa đủ mạnh (xem quy định bên dưới).",
        "en": "the password is too weak (see the policy below).",
    },
    "us.err.shared_account": {
        "vi": "tài khoản quản trị phải là tên riêng của một người, không dùng tên chung.",
        "en": "admin accounts are personal: use the person's name, not a shared one.",
    },
    "us.err.bad_username": {
        "vi": "2–64 ký tự chữ thường, số, dấu . _ -",
        "en": "2–64 lower-case letters, digits, . _ -",
    },
    "us.err.bad_unit": {
        "vi": "đơn vị không phù hợp với vai trò (cán bộ xã cần mã xã đã có).",
        "en": "the unit does not fit the role (a commune operator needs an existing commune).",
    },
    "us.err.exists": {"vi": "tên đăng nhập này đã có.", "en": "this username is taken."},
    "us.err.last_admin": {
        "vi": "phải còn ít nhất một quản trị viên đang hoạt động.",
        "en": "at least one admin must remain enabled.",
    },
    "us.err.disabled": {
        "vi": "tài khoản đã bị vô hiệu hoá vĩnh viễn.",
        "en": "the account is disabled for good.",
    },
    "us.err.not_confirmed": {
        "vi": "hãy đánh dấu ô xác nhận.",
        "en": "tick the confirmation box.",
    },
    "us.err.invalid": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
}

_AUDIT: dict[str, dict[str, str]] = {
    "au.title": {"vi": "Nhật ký hệ thống", "en": "Audit log"},
    "au.help": {
        "vi": "Mọi thao tác trên hệ thống, mới nhất trước. Nhật ký chỉ được ghi thêm, không"
        " sửa, không xoá.",
        "en": "Every action on the system, newest first. The log is append-only: never edited,"
        " never deleted.",
    },
    "au.filters": {"vi": "Bộ lọc", "en": "Filters"},
    "au.actor": {"vi": "Người thực hiện", "en": "Actor"},
    "au.action": {"vi": "Thao tác", "en": "Action"},
    "au.action_hint": {
        "vi": "Thao tác: tên chính xác (commune.update) hoặc một nhóm kết thúc bằng dấu chấm"
        " (auth.). Đối tượng: tên đăng nhập, mã xã, mã bản tin hoặc thiết bị.",
        "en": "Action: an exact name (commune.update) or a family ending in a dot (auth.)."
        " Object: a username, commune code, bulletin or device id.",
    },
    "au.object": {"vi": "Đối tượng", "en": "Object"},
    "au.since": {"vi": "Từ ngày", "en": "From"},
    "au.until": {"vi": "Đến hết ngày", "en": "Through"},
    "au.filter_submit": {"vi": "Lọc", "en": "Filter"},
    "au.clear": {"vi": "Bỏ lọc", "en": "Clear"},
    "au.csv": {"vi": "Tải CSV", "en": "Download CSV"},
    "au.at": {"vi": "Thời điểm", "en": "When"},
    "au.detail": {"vi": "Chi tiết", "en": "Detail"},
    "au.changes": {"vi": "Thay đổi", "en": "Changes"},
    "au.show_changes": {"vi": "Xem trước / sau", "en": "Before / after"},
    "au.before": {"vi": "Trước", "en": "Before"},
    "au.after": {"vi": "Sau", "en": "After"},
    "au.none": {"vi": "Không có bản ghi nào.", "en": "No entries."},
    "au.older": {"vi": "Cũ hơn →", "en": "Older →"},
    "au.newest": {"vi": "← Mới nhất", "en": "← Newest"},
    "au.errors_title": {"vi": "Bộ lọc chưa hợp lệ:", "en": "The filters are not valid:"},
    "au.err.date": {"vi": "ngày phải theo dạng YYYY-MM-DD.", "en": "a date is YYYY-MM-DD."},
    "au.err.invalid": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
}

_REPORTS: dict[str, dict[str, str]] = {
    "rp.title": {"vi": "Báo cáo hoạt động", "en": "Activity report"},
    "rp.month": {"vi": "Tháng", "en": "Month"},
    "rp.commune": {"vi": "Xã", "en": "Commune"},
    "rp.whole_province": {"vi": "Toàn tỉnh", "en": "The whole province"},
    "rp.show": {"vi": "Xem báo cáo", "en": "Show"},
    "rp.csv": {"vi": "Tải CSV", "en": "Download CSV"},
    "rp.form": {"vi": "Biểu mẫu", "en": "Form"},
    "rp.errors_title": {"vi": "Chưa lập được báo cáo:", "en": "No report:"},
    "rp.err.month": {
        "vi": "tháng phải theo dạng YYYY-MM (ví dụ 2025-03).",
        "en": "the month is YYYY-MM (e.g. 2025-03).",
    },
    "rp.err.invalid": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
    "rp.bulletins": {"vi": "Bản tin đã phát", "en": "Bulletins aired"},
    "rp.airings": {"vi": "Lượt phát", "en": "Airings"},
    "rp.minutes": {"vi": "Phút phát sóng", "en": "Minutes aired"},
    "rp.failed": {"vi": "Lượt phát lỗi", "en": "Failed airings"},
    "rp.unit_min": {"vi": "phút", "en": "min"},
    "rp.minutes_help": {
        "vi": "Một lượt phát là một thiết bị phát một bản tin một lần; số phút cộng trên mọi"
        " thiết bị, tính vào ngày bắt đầu phát (giờ Việt Nam). Lượt lỗi không được tính.",
        "en": "An airing is one device playing one bulletin once; minutes add up over every"
        " device and count on the (Vietnam) day the airing started. Failed airings are"
        " left out.",
    },
    "rp.per_day": {"vi": "Số phút phát sóng theo ngày", "en": "Minutes aired per day"},
    "rp.chart_per_day": {
        "vi": "Biểu đồ số phút phát sóng mỗi ngày",
        "en": "Chart of minutes aired each day",
    },
    "rp.by_priority": {"vi": "Theo mức độ ưu tiên", "en": "By priority"},
    "rp.chart_priority": {
        "vi": "Biểu đồ số phút theo mức độ ưu tiên",
        "en": "Chart of minutes by priority",
    },
    "rp.by_kind": {"vi": "Theo hình thức", "en": "By kind"},
    "rp.by_source": {"vi": "Theo cấp nguồn tin", "en": "By source level"},
    "rp.by_category": {"vi": "Theo lĩnh vực nội dung", "en": "By content category"},
    "rp.col_priority": {"vi": "Mức ưu tiên", "en": "Priority"},
    "rp.col_kind": {"vi": "Hình thức", "en": "Kind"},
    "rp.col_source": {"vi": "Cấp nguồn tin", "en": "Source level"},
    "rp.col_category": {"vi": "Lĩnh vực", "en": "Category"},
    "rp.col_bulletins": {"vi": "Bản tin", "en": "Bulletins"},
    "rp.col_airings": {"vi": "Lượt phát", "en": "Airings"},
    "rp.col_minutes": {"vi": "Phút", "en": "Minutes"},
    "rp.src.central": {"vi": "Trung ương", "en": "Central"},
    "rp.src.province": {"vi": "Tỉnh", "en": "Province"},
    "rp.src.agency": {"vi": "Sở, ban, ngành, báo", "en": "Agencies and newspaper"},
    "rp.src.commune": {"vi": "Xã", "en": "Commune"},
    "rp.src.unknown": {"vi": "Không rõ", "en": "Unknown"},
    "rp.uptime": {"vi": "Thời gian hoạt động của thiết bị", "en": "Device uptime"},
    "rp.uptime_help": {
        "vi": "Chia kỳ báo cáo thành các ô 5 phút; thiết bị được tính là hoạt động trong một ô"
        " nếu có gửi báo cáo (tình trạng, lượt phát) trong ô đó. Chỉ tính các ô từ khi thiết"
        " bị đăng ký đến hiện tại. Tỉ lệ = số ô hoạt động / số ô được tính.",
        "en": "The period is cut into 5-minute slots; a device is up in a slot if it reported"
        " (health, an airing) within it. Only slots from its enrollment until now count."
        " Uptime = up slots / counted slots.",
    },
    "rp.chart_uptime": {
        "vi": "Biểu đồ tỉ lệ hoạt động theo thiết bị",
        "en": "Chart of uptime per device",
    },
    "rp.col_device": {"vi": "Thiết bị", "en": "Device"},
    "rp.col_commune": {"vi": "Xã", "en": "Commune"},
    "rp.col_slots": {"vi": "Số ô tính", "en": "Slots counted"},
    "rp.col_up_slots": {"vi": "Số ô hoạt động", "en": "Slots up"},
    "rp.col_uptime": {"vi": "Tỉ lệ hoạt động", "en": "Uptime"},
    "rp.not_enrolled": {"vi": "Chưa đăng ký", "en": "Not enrolled"},
    "rp.no_devices": {"vi": "Chưa có thiết bị.", "en": "No devices."},
    "rp.quotas": {"vi": "Chỉ tiêu cung cấp tin", "en": "Provider quotas"},
    "rp.quota_help": {
        "vi": "Tính các bản tin được phát hành vào kho thông tin nguồn trong kỳ. Độ dài bản"
        " tin chữ tính theo 150 chữ/phút; bản tin âm thanh theo thời lượng thiết bị đo được.",
        "en": "Counts bulletins published into the source repository in the period. Text"
        " length at 150 words per minute; audio by the length devices measured.",
    },
    "rp.col_unit": {"vi": "Đơn vị", "en": "Unit"},
    "rp.col_provider": {"vi": "Loại đơn vị", "en": "Provider"},
    "rp.col_rule": {"vi": "Chỉ tiêu", "en": "Rule"},
    "rp.col_provided": {"vi": "Đã cung cấp", "en": "Provided"},
    "rp.col_counted": {"vi": "Đạt yêu cầu / cần", "en": "Qualifying / needed"},
    "rp.col_met": {"vi": "Kết quả", "en": "Result"},
    "rp.unknown_length": {"vi": "chưa rõ độ dài", "en": "length unknown"},
    "rp.met": {"vi": "Đạt", "en": "Met"},
    "rp.not_met": {"vi": "Chưa đạt", "en": "Not met"},
    "rp.provider.province": {"vi": "Tỉnh (Sở VHTTDL)", "en": "Province"},
    "rp.provider.newspaper": {"vi": "Báo và PT-TH", "en": "Newspaper / broadcaster"},
    "rp.provider.agency": {"vi": "Sở, ban, ngành", "en": "Agency"},
    "rp.rule.province": {
        "vi": "Từ 2 sản phẩm truyền thông/tháng",
        "en": "At least 2 products a month",
    },
    "rp.rule.newspaper": {
        "vi": "Từ 4 bản tin/tháng, mỗi bản 2–5 phút",
        "en": "At least 4 bulletins a month of 2–5 minutes",
    },
    "rp.rule.agency": {
        "vi": "Từ 1 bản tin/tháng: 300–500 chữ hoặc 2–3 phút âm thanh",
        "en": "At least 1 bulletin a month: 300–500 words or 2–3 minutes of audio",
    },
}

#: Content categories come from hub.categories, so the report and the list never differ.
_CATEGORIES: dict[str, dict[str, str]] = {
    f"rp.cat.{c.code}": {"vi": c.vi, "en": c.en} for c in CATEGORIES
}

_ACCOUNT_FORMS: dict[str, dict[str, str]] = {
    "us.secret_show": {"vi": "Hiện", "en": "Show"},
    "us.secret_hide": {"vi": "Ẩn", "en": "Hide"},
    "us.secret_copy": {"vi": "Sao chép", "en": "Copy"},
    "us.secret_copied": {"vi": "Đã sao chép", "en": "Copied"},
    "us.unit_by_role": {
        "vi": "— Theo vai trò (cấp tỉnh) —",
        "en": "— By the role (the province) —",
    },
    "us.unit_communes": {"vi": "Xã, phường", "en": "Communes"},
    "us.unit_agencies": {"vi": "Cơ quan, đơn vị đã có", "en": "Known agencies"},
    "us.unit_new": {"vi": "Hoặc mã cơ quan mới", "en": "Or a new agency's code"},
    "us.unit_new_hint": {
        "vi": "Chỉ cho báo, cơ quan gửi tin chưa có trong danh sách (vd. baotinh).",
        "en": "Only for a newspaper or agency not listed yet (e.g. baotinh).",
    },
    "us.move_title": {"vi": "Chuyển công tác", "en": "Move to another post"},
    "us.move_help": {
        "vi": "Khi người dùng đổi vị trí: vai trò và đơn vị mới có hiệu lực ngay, mọi phiên"
        " đăng nhập của tài khoản kết thúc; thay đổi được ghi nhật ký.",
        "en": "When the holder changes jobs: the new role and unit apply at once, every session"
        " of the account ends; the change is logged.",
    },
    "us.move_submit": {"vi": "Chuyển", "en": "Move"},
    "us.done.move": {"vi": "Đã chuyển tài khoản.", "en": "The account has been moved."},
}

LABELS: dict[str, dict[str, str]] = {
    **_COMMUNES,
    **_USERS,
    **_AUDIT,
    **_REPORTS,
    **_CATEGORIES,
    **_ACCOUNT_FORMS,
}
