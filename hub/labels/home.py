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
}
