"""How a refused form field is explained (hub/form_errors.py), by pydantic's error type."""

LABELS: dict[str, dict[str, str]] = {
    "fe.invalid": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
    "fe.missing": {"vi": "cần điền.", "en": "required."},
    "fe.string_too_short": {
        "vi": "cần ít nhất {min_length} ký tự.",
        "en": "needs at least {min_length} characters.",
    },
    "fe.string_too_long": {
        "vi": "tối đa {max_length} ký tự.",
        "en": "at most {max_length} characters.",
    },
    "fe.too_short": {"vi": "cần ít nhất {min_length} mục.", "en": "needs at least {min_length}."},
    "fe.too_long": {"vi": "tối đa {max_length} mục.", "en": "at most {max_length}."},
    "fe.string_pattern_mismatch": {
        "vi": "có ký tự không dùng được ở đây (chỉ chữ thường không dấu, chữ số, dấu . _ -).",
        "en": "has characters not allowed here (lower-case letters, digits, . _ - only).",
    },
    "fe.literal_error": {
        "vi": "hãy chọn một mục trong danh sách.",
        "en": "choose one of the listed options.",
    },
    "fe.int_parsing": {"vi": "cần một số nguyên.", "en": "needs a whole number."},
    "fe.float_parsing": {"vi": "cần một số.", "en": "needs a number."},
    "fe.bool_parsing": {"vi": "cần chọn có hoặc không.", "en": "needs yes or no."},
    "fe.greater_than_equal": {"vi": "không được nhỏ hơn {ge}.", "en": "must be at least {ge}."},
    "fe.less_than_equal": {"vi": "không được lớn hơn {le}.", "en": "must be at most {le}."},
    "fe.greater_than": {"vi": "phải lớn hơn {gt}.", "en": "must be more than {gt}."},
    "fe.less_than": {"vi": "phải nhỏ hơn {lt}.", "en": "must be less than {lt}."},
    "fe.datetime_parsing": {
        "vi": "ngày giờ chưa đúng dạng (ngày/tháng/năm giờ:phút).",
        "en": "not a date and time.",
    },
    "fe.date_parsing": {"vi": "ngày chưa đúng dạng.", "en": "not a date."},
    "fe.time_parsing": {"vi": "giờ chưa đúng dạng (giờ:phút).", "en": "not a time (HH:MM)."},
    "fe.value_error": {"vi": "giá trị không hợp lệ.", "en": "not a valid value."},
    "profile.speaker-cluster": {"vi": "Cụm loa", "en": "Loudspeaker cluster"},
    "profile.led-board-p10": {"vi": "Bảng LED P10 ngoài trời", "en": "Outdoor LED board P10"},
    "profile.lcd-board-1080p": {"vi": "Màn hình LCD 1080p", "en": "LCD screen 1080p"},
    "bn.upload.mismatch": {
        "vi": "Tệp này là {found}, không khớp với hình thức đã chọn; hãy chọn tệp khác hoặc"
        " đổi hình thức.",
        "en": "This file is {found}, not the kind chosen; choose another file or change the kind.",
    },
}
