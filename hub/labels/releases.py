"""Labels for the fleet updates page (issue #14)."""

LABELS: dict[str, dict[str, str]] = {
    "nav.releases": {"vi": "Cập nhật phần mềm", "en": "Updates"},
    "rl.title": {"vi": "Cập nhật phần mềm thiết bị", "en": "Device software updates"},
    "rl.help": {
        "vi": "Mỗi phiên bản do `make release` tạo và `hub release add` ký. Thiết bị chỉ cài"
        " bản có chữ ký của hub, mới hơn bản đang chạy, và chỉ chuyển khi không có tin khẩn"
        " cấp và không đang phát; bản mới không tự chứng minh hoạt động được thì thiết bị tự"
        " quay lại bản cũ.",
        "en": "Each release is built by `make release` and signed by `hub release add`. Devices"
        " install only hub-signed releases newer than what they run, switch only when no"
        " emergency is active and nothing is on air, and go back by themselves when the new"
        " release does not prove itself.",
    },
    "rl.versions": {"vi": "Phiên bản", "en": "Versions"},
    "rl.version": {"vi": "Phiên bản", "en": "Version"},
    "rl.running": {"vi": "Đang chạy", "en": "Running"},
    "rl.updating": {"vi": "Đang cập nhật", "en": "Updating"},
    "rl.failed": {"vi": "Lỗi", "en": "Failed"},
    "rl.rolled_back": {"vi": "Đã quay lại bản cũ", "en": "Rolled back"},
    "rl.added": {"vi": "Ngày thêm", "en": "Added"},
    "rl.none": {
        "vi": "Chưa có phiên bản nào. Thêm bằng: hub release add --data THƯ_MỤC TỆP",
        "en": "No releases yet. Add one with: hub release add --data DIR FILE",
    },
    "rl.other": {"vi": "Bản cài sẵn (không qua cập nhật)", "en": "Provisioned (not a release)"},
    "rl.rollouts": {"vi": "Các đợt triển khai", "en": "Roll-outs"},
    "rl.scope": {"vi": "Phạm vi", "en": "Scope"},
    "rl.percent": {"vi": "Tỷ lệ thiết bị (%)", "en": "Share of devices (%)"},
    "rl.state": {"vi": "Trạng thái", "en": "State"},
    "rl.state.active": {"vi": "Đang triển khai", "en": "Active"},
    "rl.state.paused": {"vi": "Tạm dừng", "en": "Paused"},
    "rl.state.stopped": {"vi": "Đã dừng", "en": "Stopped"},
    "rl.whole_province": {"vi": "Toàn tỉnh", "en": "Whole province"},
    "rl.rollback": {"vi": "Quay lại bản cũ (có ký)", "en": "Rollback (signed)"},
    "rl.auto_paused": {
        "vi": "Đợt triển khai đã tự tạm dừng vì quá nhiều thiết bị cập nhật bị lỗi:",
        "en": "A roll-out paused itself because too many updated devices failed:",
    },
    "rl.widen": {"vi": "Mở rộng", "en": "Widen"},
    "rl.pause": {"vi": "Tạm dừng", "en": "Pause"},
    "rl.resume": {"vi": "Tiếp tục", "en": "Resume"},
    "rl.stop": {"vi": "Dừng hẳn", "en": "Stop"},
    "rl.start_title": {"vi": "Bắt đầu đợt triển khai", "en": "Start a roll-out"},
    "rl.communes": {
        "vi": "Chỉ các xã (mã, cách nhau bởi dấu phẩy; để trống: toàn tỉnh)",
        "en": "Only these communes (codes, comma-separated; empty: whole province)",
    },
    "rl.group": {"vi": "Nhóm thiết bị", "en": "Device group"},
    "rl.group_none": {
        "vi": "Không chọn nhóm (theo xã hoặc toàn tỉnh)",
        "en": "No group (by commune, or the whole province)",
    },
    "rl.group_deleted": {"vi": "Nhóm đã xoá", "en": "Deleted group"},
    "rl.kind": {"vi": "Loại thiết bị", "en": "Device kind"},
    "rl.kind_all": {"vi": "Tất cả", "en": "All"},
    "rl.max_failure": {
        "vi": "Tự tạm dừng khi tỷ lệ lỗi vượt (%)",
        "en": "Pause by itself above this failure share (%)",
    },
    "rl.start_submit": {"vi": "Bắt đầu", "en": "Start"},
    "rl.errors_title": {"vi": "Chưa bắt đầu được:", "en": "Not started:"},
    "rl.devices": {"vi": "Thiết bị gần đây", "en": "Recent device reports"},
    "rl.device": {"vi": "Thiết bị", "en": "Device"},
    "rl.target": {"vi": "Bản đích", "en": "Target"},
    "rl.reason": {"vi": "Lý do", "en": "Reason"},
    "rl.silence": {"vi": "Thời gian im lặng khi chuyển", "en": "Silence of the switch"},
    "rl.reported": {"vi": "Báo lúc", "en": "Reported"},
    "rl.ustate.idle": {"vi": "Bình thường", "en": "Idle"},
    "rl.ustate.downloading": {"vi": "Đang tải", "en": "Downloading"},
    "rl.ustate.waiting": {"vi": "Chờ lúc rảnh", "en": "Waiting for a quiet moment"},
    "rl.ustate.updated": {"vi": "Đã cập nhật", "en": "Updated"},
    "rl.ustate.failed": {"vi": "Lỗi", "en": "Failed"},
    "rl.ustate.rolled_back": {"vi": "Đã quay lại bản cũ", "en": "Rolled back"},
}
