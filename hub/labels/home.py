"""Labels of the per-role home page."""

LABELS: dict[str, dict[str, str]] = {
    "home.queue": {"vi": "Chờ thẩm định", "en": "Awaiting review"},
    "home.queue_all": {"vi": "Mở hàng chờ thẩm định", "en": "Open the review queue"},
    "home.waiting": {"vi": "đã chờ {amount} {unit}", "en": "waiting {amount} {unit}"},
    "home.minutes": {"vi": "phút", "en": "min"},
    "home.hours": {"vi": "giờ", "en": "h"},
    "home.days": {"vi": "ngày", "en": "days"},
    "home.own": {"vi": "Bản tin của đơn vị", "en": "Your unit's bulletins"},
    "home.returned": {
        "vi": "Bị trả lại — ý kiến của người thẩm định",
        "en": "Returned — the reviewer's comments",
    },
    "home.write": {"vi": "Soạn bản tin mới", "en": "Write a bulletin"},
    "home.today": {"vi": "Hôm nay phát tại {commune}", "en": "Airing today in {commune}"},
    "home.windows": {"vi": "Khung giờ phát loa:", "en": "Loudspeaker windows:"},
    "home.in_windows": {"vi": "trong khung giờ phát", "en": "within the windows"},
    "home.nothing_today": {
        "vi": "Hôm nay không có bản tin nào phát tại xã.",
        "en": "Nothing airs in the commune today.",
    },
    "air.title": {"vi": "Đã phát ở đâu, khi nào", "en": "Where and when it aired"},
    "air.summary": {
        "vi": "{devices} thiết bị, {airings} lượt phát, {minutes} phút",
        "en": "{devices} devices, {airings} airings, {minutes} minutes",
    },
    "air.count": {"vi": "Lượt phát", "en": "Airings"},
    "air.minutes": {"vi": "Số phút", "en": "Minutes"},
    "air.first": {"vi": "Lần đầu", "en": "First"},
    "air.last": {"vi": "Lần cuối", "en": "Last"},
    "air.none": {
        "vi": "Chưa thiết bị nào báo đã phát bản tin này.",
        "en": "No device has reported airing this bulletin yet.",
    },
    "air.hint": {
        "vi": "Theo báo cáo phát của từng thiết bị (lượt phát lỗi không tính).",
        "en": "From each device's proof of play (failed plays are not counted).",
    },
    "search.label": {"vi": "Tìm trong tiêu đề, nội dung", "en": "Search title and text"},
    "search.placeholder": {
        "vi": "vd. tiêm phòng hoặc tiem phong",
        "en": "e.g. tiêm phòng or tiem phong",
    },
}
