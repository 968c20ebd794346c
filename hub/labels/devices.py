"""Labels for the device fleet: status, verdicts, slots, enrollment codes and commands."""

from loa_contract import Fault

#: Why a device is not OK: every Fault (the hub's verdict reasons and the agent's own fault
#: names), shown as `dv.reason.<fault>`. A name a newer agent sends that is not a Fault is
#: shown as it is.
REASONS: dict[Fault, dict[str, str]] = {
    Fault.OFFLINE: {"vi": "Mất kết nối", "en": "Offline"},
    Fault.NOT_ENROLLED: {"vi": "Chưa đăng ký", "en": "Not enrolled"},
    Fault.UNDER_VOLTAGE: {
        "vi": "Nguồn điện yếu (thiếu áp)",
        "en": "Power supply too weak (under-voltage)",
    },
    Fault.THROTTLED: {
        "vi": "Bộ xử lý bị giảm tốc (quá nhiệt hoặc thiếu điện)",
        "en": "CPU throttled (heat or power)",
    },
    Fault.SD_READ_ONLY: {
        "vi": "Thẻ nhớ chỉ đọc được, không ghi được",
        "en": "SD card has gone read-only",
    },
    Fault.SD_ERRORS: {"vi": "Thẻ nhớ báo lỗi", "en": "SD card reports errors"},
    Fault.SD_WRITE_FAILED: {
        "vi": "Ghi thử thẻ nhớ thất bại",
        "en": "SD card write test failed",
    },
    Fault.DISK_LOW: {"vi": "Sắp hết bộ nhớ", "en": "Disk almost full"},
    Fault.MEMORY_HIGH: {"vi": "RAM gần đầy", "en": "Memory almost full"},
    Fault.TEMPERATURE_HIGH: {"vi": "Nhiệt độ cao", "en": "Running hot"},
    Fault.CLOCK_UNTRUSTED: {
        "vi": "Đồng hồ chưa được xác thực",
        "en": "Clock not trusted yet",
    },
    Fault.CLOCK_OFFSET: {"vi": "Đồng hồ bị lệch", "en": "Clock is off"},
    Fault.OUTBOX_BACKLOG: {
        "vi": "Báo cáo tồn đọng chưa gửi được",
        "en": "Reports piling up unsent",
    },
    Fault.PLAYER_STUCK: {"vi": "Trình phát bị treo", "en": "Player stuck"},
    Fault.SCREEN_BLANK: {"vi": "Màn hình không hiển thị", "en": "Screen blank"},
    Fault.SCREEN_FROZEN: {"vi": "Màn hình bị đứng hình", "en": "Screen frozen"},
    Fault.PLAYER_ERROR: {"vi": "Trình phát báo lỗi", "en": "Player error"},
    Fault.MANIFEST_TAMPERED: {
        "vi": "Lịch phát lưu trên thiết bị bị sửa, đã từ chối",
        "en": "Programme stored on the device was altered; refused",
    },
    Fault.EMERGENCY_TAMPERED: {
        "vi": "Tin khẩn cấp lưu trên thiết bị bị sửa, đã từ chối",
        "en": "Emergency stored on the device was altered; refused",
    },
    Fault.CACHE_CORRUPT: {
        "vi": "Tệp nội dung trên thẻ nhớ bị hỏng, đã tải lại",
        "en": "A cached file was damaged; fetched again",
    },
    Fault.STATE_REBUILT: {
        "vi": "Cơ sở dữ liệu thiết bị hỏng, đã dựng lại",
        "en": "Device database was damaged; rebuilt",
    },
    Fault.NO_HEALTH: {
        "vi": "Chưa nhận được số liệu sức khoẻ",
        "en": "No health report received yet",
    },
    Fault.HEALTH_STALE: {
        "vi": "Số liệu sức khoẻ đã cũ",
        "en": "Last health report is old",
    },
    Fault.SD_SLOW: {
        "vi": "Thẻ nhớ ghi chậm (sắp hỏng?)",
        "en": "SD card slow (wearing out?)",
    },
    Fault.UNDER_VOLTAGE_SINCE_BOOT: {
        "vi": "Đã từng thiếu điện áp từ lúc khởi động",
        "en": "Under-voltage since the last boot",
    },
    Fault.REPORTS_REFUSED: {
        "vi": "Máy chủ từ chối bằng chứng phát gần đây",
        "en": "Proof of play refused lately",
    },
    Fault.TASK_DIED: {
        "vi": "Một tác vụ của thiết bị bị dừng đột ngột, đã tự khởi động lại",
        "en": "A task of the device died; restarted",
    },
    Fault.DISK_FULL: {
        "vi": "Hết bộ nhớ, không tải được nội dung mới",
        "en": "Disk full; new content refused",
    },
    Fault.TASK_STALLED: {
        "vi": "Thiết bị bị treo (không còn tiến triển), sẽ tự khởi động lại",
        "en": "Device hung (no progress); it will restart itself",
    },
    Fault.STATE_WRITE_FAILED: {
        "vi": "Không ghi được dữ liệu lên thẻ nhớ",
        "en": "Cannot write to the SD card",
    },
    Fault.SPEECH_FAILED: {
        "vi": "Không tạo được giọng đọc cho tin viết",
        "en": "Speech for a text bulletin could not be made",
    },
    Fault.PLAYER_CHECK_FAILED: {
        "vi": "Trình phát không tự kiểm tra được",
        "en": "Player could not check itself",
    },
}

LABELS: dict[str, dict[str, str]] = {
    # ---- the status table
    "dv.new": {"vi": "Thêm thiết bị", "en": "Add a device"},
    "dv.all": {"vi": "Tất cả", "en": "All"},
    "dv.filter_commune": {"vi": "Xã, phường", "en": "Commune"},
    "dv.filter_kind": {"vi": "Loại thiết bị", "en": "Device kind"},
    "dv.filter_verdict": {"vi": "Tình trạng", "en": "Condition"},
    "dv.filter_submit": {"vi": "Lọc", "en": "Filter"},
    "dv.filter_clear": {"vi": "Bỏ lọc", "en": "Clear filters"},
    "dv.updated_at": {"vi": "Cập nhật lúc", "en": "Updated at"},
    "dv.shown": {"vi": "Đang hiển thị", "en": "Showing"},
    "dv.none_match": {
        "vi": "Không có thiết bị nào khớp bộ lọc.",
        "en": "No device matches the filters.",
    },
    "dv.refresh_paused": {
        "vi": "Bảng đã ngừng tự cập nhật vì lâu không thao tác.",
        "en": "The table stopped refreshing itself after a long idle spell.",
    },
    "dv.refresh_resume": {"vi": "Cập nhật tiếp", "en": "Resume updates"},
    "dv.refresh_failed": {
        "vi": "Không cập nhật được bảng (mất kết nối tới máy chủ?). Số liệu có thể đã cũ.",
        "en": "Could not refresh the table (hub unreachable?). The figures may be stale.",
    },
    "dv.verdict": {"vi": "Tình trạng", "en": "Condition"},
    "dv.verdict.ok": {"vi": "Tốt", "en": "OK"},
    "dv.verdict.warning": {"vi": "Cần chú ý", "en": "Warning"},
    "dv.verdict.fault": {"vi": "Có lỗi", "en": "Fault"},
    "dv.verdict.unknown": {"vi": "Chưa rõ", "en": "Unknown"},
    "dv.temperature": {"vi": "Nhiệt độ", "en": "Temperature"},
    "dv.disk_free": {"vi": "Bộ nhớ trống", "en": "Disk free"},
    "dv.volume": {"vi": "Âm lượng", "en": "Volume"},
    "dv.connected_now": {"vi": "Đang kết nối", "en": "Connected now"},
    # ---- proof of play the hub refused (codes from hub/play_evidence.py)
    "dv.refused": {
        "vi": "Bằng chứng phát bị từ chối: {count}, lần gần nhất {when}: {reason}",
        "en": "Refused proof-of-play: {count}, last {when}: {reason}",
    },
    "dv.refused.ends_before_start": {
        "vi": "kết thúc trước khi bắt đầu",
        "en": "ends before it starts",
    },
    "dv.refused.in_future": {"vi": "thời gian ở tương lai", "en": "time in the future"},
    "dv.refused.before_enrollment": {
        "vi": "trước khi thiết bị được đăng ký",
        "en": "before the device was enrolled",
    },
    "dv.refused.unknown_bulletin": {
        "vi": "không phải bản tin nào",
        "en": "not a bulletin",
    },
    "dv.refused.not_sent_to_device": {
        "vi": "bản tin không được gửi tới thiết bị này",
        "en": "bulletin never sent to this device",
    },
    "dv.refused.kind_mismatch": {"vi": "sai hình thức bản tin", "en": "wrong bulletin kind"},
    "dv.refused.priority_mismatch": {
        "vi": "sai mức độ ưu tiên",
        "en": "wrong priority",
    },
    "dv.refused.outside_validity": {
        "vi": "phát ngoài thời gian hiệu lực của bản tin",
        "en": "aired outside the bulletin's validity",
    },
    "dv.refused.too_long": {
        "vi": "thời lượng dài hơn nội dung",
        "en": "longer than its content",
    },
    "dv.refused.bad_position": {
        "vi": "vị trí phát không hợp lệ",
        "en": "impossible play position",
    },
    # ---- one device
    "dv.back": {"vi": "← Danh sách thiết bị", "en": "← All devices"},
    "dv.identity": {"vi": "Thông tin thiết bị", "en": "Device details"},
    "dv.id": {"vi": "Mã thiết bị", "en": "Device ID"},
    "dv.profile": {"vi": "Cấu hình phần cứng", "en": "Hardware profile"},
    "dv.enrolled": {"vi": "Đã đăng ký", "en": "Enrolled"},
    "dv.awaiting_enrollment": {
        "vi": "Chưa — mã đăng ký hết hạn lúc",
        "en": "Not yet — the enrollment code expires",
    },
    "dv.agent_version": {"vi": "Phiên bản phần mềm", "en": "Agent version"},
    "dv.hostname": {"vi": "Tên máy", "en": "Hostname"},
    "dv.manifest": {"vi": "Phiên bản lịch phát trên máy chủ", "en": "Hub's manifest version"},
    "dv.yes": {"vi": "Có", "en": "Yes"},
    "dv.no": {"vi": "Không", "en": "No"},
    "dv.none": {"vi": "Không có", "en": "None"},
    "dv.no_reasons": {"vi": "Không phát hiện vấn đề nào.", "en": "No problem found."},
    "dv.health_title": {"vi": "Số liệu sức khoẻ gần nhất", "en": "Latest health report"},
    "dv.no_health": {
        "vi": "Thiết bị chưa gửi số liệu sức khoẻ nào.",
        "en": "The device has not reported its health yet.",
    },
    "dv.h.at": {"vi": "Thời điểm đo", "en": "Taken at"},
    "dv.h.seq": {"vi": "Số thứ tự báo cáo", "en": "Report sequence number"},
    "dv.h.cpu": {"vi": "Bộ xử lý (CPU)", "en": "CPU"},
    "dv.h.memory": {"vi": "RAM đã dùng", "en": "Memory used"},
    "dv.h.disk_free": {"vi": "Bộ nhớ trống (thẻ nhớ)", "en": "Disk free (SD card)"},
    "dv.h.temperature": {"vi": "Nhiệt độ bộ xử lý", "en": "CPU temperature"},
    "dv.h.uptime": {"vi": "Thời gian chạy liên tục", "en": "Up for"},
    "dv.h.network": {"vi": "Dữ liệu mạng (nhận · gửi)", "en": "Network (received · sent)"},
    "dv.h.player_state": {"vi": "Trình phát", "en": "Player"},
    "dv.h.volume": {"vi": "Âm lượng", "en": "Volume"},
    "dv.h.manifest_version": {"vi": "Phiên bản lịch phát", "en": "Manifest version"},
    "dv.h.hub_has": {"vi": "(máy chủ đã có bản {})", "en": "(the hub has {})"},
    "dv.h.cache": {"vi": "Bộ đệm nội dung", "en": "Content cache"},
    "dv.h.cache_value": {"vi": "{} trong {} tệp", "en": "{} in {} files"},
    "dv.h.outbox_backlog": {"vi": "Báo cáo chờ gửi", "en": "Reports waiting to be sent"},
    "dv.h.clock_offset": {"vi": "Độ lệch đồng hồ", "en": "Clock offset"},
    "dv.h.clock_trusted": {"vi": "Đồng hồ đã xác thực", "en": "Clock trusted"},
    "dv.h.faults": {"vi": "Lỗi thiết bị tự báo", "en": "Faults the device reports"},
    "dv.h.under_voltage": {"vi": "Thiếu điện áp (hiện tại)", "en": "Under-voltage now"},
    "dv.h.under_voltage_since_boot": {
        "vi": "Đã từng thiếu điện áp từ lúc khởi động",
        "en": "Under-voltage since boot",
    },
    "dv.h.throttled": {"vi": "CPU đang bị giảm tốc", "en": "CPU throttled now"},
    "dv.h.throttled_since_boot": {
        "vi": "CPU đã từng bị giảm tốc từ lúc khởi động",
        "en": "CPU throttled since boot",
    },
    "dv.h.filesystem_readonly": {"vi": "Thẻ nhớ chỉ đọc", "en": "SD card read-only"},
    "dv.h.ext4_errors_total": {"vi": "Số lỗi hệ thống tệp", "en": "Filesystem errors"},
    "dv.h.sd_write_ok": {"vi": "Ghi thử thẻ nhớ thành công", "en": "SD card write test passed"},
    "dv.h.sd_write_seconds": {
        "vi": "Thời gian ghi thử thẻ nhớ (giây)",
        "en": "SD card write test time (s)",
    },
    "dv.h.relay_on": {"vi": "Rơ-le bộ khuếch đại đang bật", "en": "Amplifier relay on"},
    "dv.h.player_stuck_stops_total": {
        "vi": "Số lần trình phát bị treo khi dừng",
        "en": "Player stops that hung",
    },
    "dv.player.idle": {"vi": "Đang chờ", "en": "Idle"},
    "dv.player.playing": {"vi": "Đang phát", "en": "Playing"},
    "dv.player.error": {"vi": "Lỗi", "en": "Error"},
    "dv.unit.d": {"vi": "ngày", "en": "d"},
    "dv.unit.h": {"vi": "giờ", "en": "h"},
    "dv.unit.min": {"vi": "phút", "en": "min"},
    "dv.unit.s": {"vi": "giây", "en": "s"},
    "dv.ago": {"vi": "{} trước", "en": "{} ago"},
    # ---- the chart
    "dv.chart_title": {"vi": "Sức khoẻ 24 giờ qua", "en": "Health over the last 24 hours"},
    "dv.chart.temperature": {"vi": "Nhiệt độ (°C)", "en": "Temperature (°C)"},
    "dv.chart.cpu": {"vi": "CPU (%)", "en": "CPU (%)"},
    "dv.chart.memory": {"vi": "RAM (%)", "en": "Memory (%)"},
    "dv.chart_peak": {"vi": "cao nhất", "en": "peak"},
    "dv.chart_hint": {
        "vi": "Cùng một thang 0–100 cho °C và %. Đường bị ngắt là lúc thiết bị không báo cáo.",
        "en": "One 0–100 scale for °C and %. A break in a line is a time without reports.",
    },
    "dv.chart_empty": {
        "vi": "Chưa có số liệu sức khoẻ trong 24 giờ qua.",
        "en": "No health reports in the last 24 hours.",
    },
    # ---- proof of play
    "dv.plays_title": {"vi": "Đã phát gần đây", "en": "Recently played"},
    "dv.play_started": {"vi": "Bắt đầu", "en": "Started"},
    "dv.play_bulletin": {"vi": "Bản tin", "en": "Bulletin"},
    "dv.play_duration": {"vi": "Thời lượng", "en": "Duration"},
    "dv.no_plays": {"vi": "Chưa có lượt phát nào.", "en": "Nothing played yet."},
    # ---- commands
    "dv.commands": {"vi": "Điều khiển", "en": "Controls"},
    "dv.cmd_offline": {
        "vi": "Thiết bị không kết nối lúc này: lệnh sẽ không tới được thiết bị.",
        "en": "The device is not connected now: a command will not reach it.",
    },
    "dv.volume_field": {"vi": "Âm lượng (0–100)", "en": "Volume (0–100)"},
    "dv.cmd.set_volume": {"vi": "Đặt âm lượng", "en": "Set volume"},
    "dv.cmd.test_tone": {"vi": "Phát âm thử", "en": "Test tone"},
    "dv.cmd.resync": {"vi": "Đồng bộ lại", "en": "Resync"},
    "dv.cmd.stop": {"vi": "Dừng phát", "en": "Stop playing"},
    "dv.stop_confirm": {
        "vi": "Dừng bản tin đang phát trên thiết bị này?",
        "en": "Stop what this device is playing?",
    },
    "dv.cmd_hint": {
        "vi": "Lệnh được ký số và chỉ có hiệu lực trong ít phút; mọi lệnh đều được ghi nhật ký.",
        "en": "Commands are signed and valid for a few minutes; every command is audited.",
    },
    # ---- the board's screen
    "dv.screen": {"vi": "Màn hình lúc này", "en": "The screen now"},
    "dv.screen_alt": {"vi": "Ảnh màn hình của {}", "en": "What {} shows"},
    "dv.screen_at": {"vi": "Ảnh chụp lúc", "en": "Taken at"},
    # ---- groups
    "gr.title": {"vi": "Nhóm thiết bị", "en": "Device groups"},
    "gr.help": {
        "vi": "Nhóm gom các thiết bị để điều khiển cùng lúc (ví dụ: loa các thôn ven sông). Mỗi"
        " thiết bị nhận lệnh riêng và trả lời riêng.",
        "en": "A group gathers devices to control them together (say, the riverside hamlets'"
        " loudspeakers). Each device gets and answers its own command.",
    },
    "gr.name": {"vi": "Tên nhóm", "en": "Group name"},
    "gr.name_hint": {"vi": "Loa ven sông", "en": "Riverside loudspeakers"},
    "gr.devices": {"vi": "Số thiết bị", "en": "Devices"},
    "gr.device": {"vi": "Thiết bị", "en": "Device"},
    "gr.province": {"vi": "Toàn tỉnh", "en": "Province-wide"},
    "gr.none": {"vi": "Chưa có nhóm nào.", "en": "No groups yet."},
    "gr.create": {"vi": "Tạo nhóm", "en": "Create the group"},
    "gr.back": {"vi": "← Nhóm thiết bị", "en": "← Device groups"},
    "gr.saved": {
        "vi": "Đã lưu danh sách thiết bị của nhóm.",
        "en": "The group's devices are saved.",
    },
    "gr.members": {"vi": "Thiết bị trong nhóm", "en": "Devices in the group"},
    "gr.save_members": {"vi": "Lưu danh sách", "en": "Save the list"},
    "gr.no_devices": {"vi": "Chưa có thiết bị nào để chọn.", "en": "No devices to choose from."},
    "gr.commands": {"vi": "Điều khiển cả nhóm", "en": "Control the whole group"},
    "gr.stop_confirm": {
        "vi": "Dừng bản tin đang phát trên mọi thiết bị của nhóm?",
        "en": "Stop what every device of the group is playing?",
    },
    "gr.batch_summary": {
        "vi": "Lệnh “{}”: {} / {} thiết bị đã có kết quả.",
        "en": "“{}”: {} of {} devices have answered.",
    },
    "gr.err.name": {
        "vi": "Hãy đặt tên nhóm (tối đa 100 ký tự). Chưa tạo nhóm nào.",
        "en": "Give the group a name (up to 100 characters). Nothing was created.",
    },
    # ---- what became of a command (the device's own answer)
    "dv.hist.title": {"vi": "Lịch sử lệnh", "en": "Command history"},
    "dv.hist.at": {"vi": "Gửi lúc", "en": "Sent at"},
    "dv.hist.command": {"vi": "Lệnh", "en": "Command"},
    "dv.hist.by": {"vi": "Người gửi", "en": "Sent by"},
    "dv.hist.status": {"vi": "Kết quả", "en": "Outcome"},
    "dv.hist.none": {"vi": "Chưa gửi lệnh nào tới thiết bị này.", "en": "No commands sent yet."},
    "dv.status.sent": {"vi": "Đã gửi, chờ trả lời", "en": "Sent, awaiting answer"},
    "dv.status.undelivered": {"vi": "Không tới được", "en": "Not delivered"},
    "dv.status.applied": {"vi": "Đã thực hiện", "en": "Applied"},
    "dv.status.refused": {"vi": "Bị từ chối", "en": "Refused"},
    "dv.ack.sent": {
        "vi": "Đã gửi lệnh “{}”, đang chờ thiết bị trả lời.",
        "en": "“{}” was sent; waiting for the device's answer.",
    },
    "dv.ack.undelivered": {
        "vi": "Lệnh “{}” chưa tới được thiết bị: thiết bị không kết nối."
        " Lệnh không được lưu lại; hãy gửi lại khi thiết bị trực tuyến.",
        "en": "“{}” did not reach the device: it is not connected."
        " Commands are not queued; send it again once the device is online.",
    },
    "dv.ack.applied": {
        "vi": "Thiết bị đã thực hiện lệnh “{}”.",
        "en": "The device applied “{}”.",
    },
    "dv.ack.refused": {
        "vi": "Thiết bị từ chối lệnh “{}”:",
        "en": "The device refused “{}”:",
    },
    "dv.ack_reason.emergency_on_air": {
        "vi": "đang phát bản tin khẩn cấp",
        "en": "an emergency is on air",
    },
    "dv.ack_reason.expired": {
        "vi": "lệnh đã hết hạn khi tới thiết bị",
        "en": "the command had expired when it arrived",
    },
    "dv.ack_reason.hub_unreachable": {
        "vi": "thiết bị không tải được lịch phát từ máy chủ",
        "en": "the device could not fetch its manifest",
    },
    "dv.ack_reason.not_saved": {
        "vi": "thẻ nhớ của thiết bị không ghi được",
        "en": "the device's SD card could not save it",
    },
    "dv.ack_reason.offline": {"vi": "thiết bị không kết nối", "en": "the device is not connected"},
    "dv.err.volume": {
        "vi": "Âm lượng: hãy nhập một số nguyên từ 0 đến 100. Chưa gửi lệnh nào.",
        "en": "Volume: enter a whole number from 0 to 100. Nothing was sent.",
    },
    "dv.err.command": {
        "vi": "Lệnh không hợp lệ. Chưa gửi lệnh nào.",
        "en": "Unknown command. Nothing was sent.",
    },
    # ---- enrollment
    "dv.enrollment": {"vi": "Mã đăng ký", "en": "Enrollment code"},
    "dv.reissue": {"vi": "Cấp mã đăng ký mới", "en": "Issue a new enrollment code"},
    "dv.reissue_hint": {
        "vi": "Cấp mã mới nếu mã cũ đã hết hạn hoặc bị mất. Mã cũ không dùng được nữa.",
        "en": "Issue a new code if the old one expired or was lost. The old code stops working.",
    },
    "dv.reissue_hint_enrolled": {
        "vi": "Dùng khi thay thẻ nhớ hoặc thay thiết bị: khoá hiện tại của thiết bị bị thu hồi"
        " và thiết bị phải đăng ký lại.",
        "en": "For a replaced SD card or device: the device's current key is revoked and it must"
        " enroll again.",
    },
    "dv.reissue_confirm": {
        "vi": "Thu hồi khoá của thiết bị này và cấp mã đăng ký mới? Thiết bị sẽ ngừng nhận"
        " lịch phát cho tới khi đăng ký lại.",
        "en": "Revoke this device's key and issue a new enrollment code? It stops receiving"
        " its schedule until it enrolls again.",
    },
    # ---- a new slot
    "dv.new_title": {"vi": "Thêm thiết bị mới", "en": "Add a new device"},
    "dv.new_intro": {
        "vi": "Tạo một vị trí thiết bị trong xã, rồi dùng mã đăng ký một lần để kết nối"
        " Raspberry Pi với máy chủ.",
        "en": "Create a device slot in a commune, then use its one-time enrollment code to"
        " connect the Raspberry Pi to the hub.",
    },
    "dv.choose_commune": {"vi": "— Chọn xã, phường —", "en": "— Choose a commune —"},
    "dv.name_field": {"vi": "Tên thiết bị", "en": "Device name"},
    "dv.name_hint": {
        "vi": "Ví dụ: Cụm loa thôn Đông, Bảng tin chợ xã.",
        "en": "For example: East hamlet loudspeakers, Market bulletin board.",
    },
    "dv.profile_default": {
        "vi": "Mặc định theo loại thiết bị",
        "en": "The default for the device kind",
    },
    "dv.profile_hint": {
        "vi": "Phần cứng của thiết bị (loa, bảng LED, màn hình LCD).",
        "en": "The device's hardware (speaker cluster, LED board, LCD screen).",
    },
    "dv.create": {"vi": "Tạo và lấy mã đăng ký", "en": "Create and get the enrollment code"},
    "dv.err.summary": {"vi": "Hãy sửa các mục sau:", "en": "Please correct the following:"},
    "dv.err.commune": {
        "vi": "Xã, phường: hãy chọn một xã trong danh sách.",
        "en": "Commune: choose one from the list.",
    },
    "dv.err.name": {
        "vi": "Tên thiết bị: bắt buộc, tối đa 200 ký tự.",
        "en": "Device name: required, at most 200 characters.",
    },
    "dv.err.kind": {
        "vi": "Loại thiết bị: chọn loa hoặc bảng tin.",
        "en": "Device kind: choose loudspeaker or board.",
    },
    "dv.err.profile": {
        "vi": "Cấu hình phần cứng: tên không hợp lệ.",
        "en": "Hardware profile: not a valid name.",
    },
    "dv.err.profile_kind": {
        "vi": "Cấu hình phần cứng: cấu hình này dành cho loại thiết bị khác.",
        "en": "Hardware profile: this profile is for the other device kind.",
    },
    # ---- the one-time code
    "dv.code_title": {"vi": "Mã đăng ký thiết bị", "en": "Device enrollment code"},
    "dv.code_created": {"vi": "Đã tạo thiết bị", "en": "Device created:"},
    "dv.code_reissued": {"vi": "Mã đăng ký mới cho", "en": "New enrollment code for"},
    "dv.code_once": {
        "vi": "Mã chỉ dùng được MỘT LẦN và chỉ hiện trên trình duyệt này. Hãy ghi lại ngay.",
        "en": "The code works ONCE and is shown only in this browser. Write it down now.",
    },
    "dv.code_expires": {"vi": "Hết hạn lúc", "en": "Expires at"},
    "dv.code_gone": {
        "vi": "Mã đăng ký chỉ hiện trong trình duyệt đã yêu cầu cấp mã, tới khi mã được dùng"
        " hoặc hết hạn. Nếu cần, hãy cấp mã mới (mã cũ sẽ không dùng được nữa).",
        "en": "An enrollment code is shown only in the browser that asked for it, until it is"
        " used or expires. Issue a new one if you need it (the old code stops working).",
    },
    "dv.code_how": {"vi": "Cách đăng ký thiết bị", "en": "How to enroll the device"},
    "dv.code_step_enroll": {
        "vi": "Trên Raspberry Pi đã cài phần mềm Loa, chạy:",
        "en": "On a Raspberry Pi with the Loa agent installed, run:",
    },
    "dv.code_step_provision": {
        "vi": "Hoặc với Raspberry Pi mới cài hệ điều hành, trong thư mục mã nguồn Loa, chạy:",
        "en": "Or on a freshly installed Raspberry Pi, in the Loa source folder, run:",
    },
    "dv.code_step_after": {
        "vi": "Trên Pi đã cài bằng provision.sh, chạy lệnh đăng ký dưới người dùng loa"
        " (sudo -u loa /opt/loa/venv/bin/edge-agent …) rồi: sudo systemctl start loa-agent."
        " Kiểm tra bằng: edge-agent doctor.",
        "en": "On a Pi set up by provision.sh, run the enroll command as the loa user"
        " (sudo -u loa /opt/loa/venv/bin/edge-agent …), then: sudo systemctl start loa-agent."
        " Check it with: edge-agent doctor.",
    },
    "dv.open_device": {"vi": "Mở trang thiết bị", "en": "Open the device page"},
    **{f"dv.reason.{fault}": labels for fault, labels in REASONS.items()},
}
