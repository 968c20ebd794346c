"""Labels of the commune's say over other units' bulletins (hub/offers.py) and of incidents."""

LABELS: dict[str, dict[str, str]] = {
    "say.title": {
        "vi": "Bản tin của tỉnh, sở ngành và trung ương",
        "en": "Bulletins from the province, agencies and the central level",
    },
    "say.help": {
        "vi": "Xã quyết định phát hay không các bản tin thông thường của cấp trên. Bản tin ưu"
        " tiên và khẩn cấp luôn được phát, không thể từ chối.",
        "en": "The commune decides which normal bulletins from above it airs. Priority and"
        " emergency bulletins always air and cannot be declined.",
    },
    "say.mode": {"vi": "Bản tin thông thường của tỉnh", "en": "Province normal bulletins"},
    "say.mode.auto": {
        "vi": "Tự động phát (xã có thể từ chối từng bản tin)",
        "en": "Air automatically (the commune may decline each)",
    },
    "say.mode.offer": {
        "vi": "Chỉ phát khi xã nhận",
        "en": "Air only once the commune accepts",
    },
    "say.mode_save": {"vi": "Lưu cách nhận", "en": "Save"},
    "say.none": {
        "vi": "Không có bản tin nào của cấp trên đang hiệu lực ở xã này.",
        "en": "No bulletin from above is currently valid in this commune.",
    },
    "say.state.airing": {"vi": "Đang phát (tự động)", "en": "Airing (automatic)"},
    "say.state.offered": {"vi": "Chờ xã quyết định", "en": "Waiting for the commune"},
    "say.state.accepted": {"vi": "Xã đã nhận", "en": "Accepted"},
    "say.state.declined": {"vi": "Xã đã từ chối", "en": "Declined"},
    "say.state.required": {"vi": "Bắt buộc phát", "en": "Always airs"},
    "say.accept": {"vi": "Nhận phát", "en": "Accept"},
    "say.decline": {"vi": "Từ chối", "en": "Decline"},
    "say.by": {"vi": "bởi", "en": "by"},
}
