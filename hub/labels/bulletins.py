"""Labels for bulletins: create, preview, detail, history and the review queue."""

LABELS: dict[str, dict[str, str]] = {
    # ---- list and create
    "bn.new": {"vi": "Tạo bản tin", "en": "New bulletin"},
    "bn.new_title": {"vi": "Tạo bản tin mới", "en": "New bulletin"},
    "bn.edit_title": {"vi": "Sửa bản tin", "en": "Edit the bulletin"},
    "bn.back_to_list": {"vi": "← Danh sách bản tin", "en": "← All bulletins"},
    "bn.back_to_bulletin": {"vi": "← Quay lại bản tin", "en": "← Back to the bulletin"},
    "bn.emergency_hint": {
        "vi": "Tin khẩn cấp được phát từ trang Khẩn cấp, không qua thẩm định.",
        "en": "Emergencies go out from the Emergency page, without review.",
    },
    "bn.words": {"vi": "Số từ", "en": "Words"},
    "bn.words_short": {"vi": "từ", "en": "words"},
    "bn.words_hint": {
        "vi": "tin viết của cơ quan, đơn vị cần 300–500 từ để gửi thẩm định",
        "en": "an agency's written bulletin needs 300–500 words for review",
    },
    "bn.words_warning": {
        "vi": "Số từ chưa nằm trong khoảng 300–500; bản tin có thể lưu nháp nhưng chưa gửi"
        " thẩm định được.",
        "en": "The word count is outside 300–500; the bulletin can be saved as a draft but"
        " not submitted for review.",
    },
    "bn.upload.uploading": {"vi": "Đang tải lên…", "en": "Uploading…"},
    "bn.upload.done": {"vi": "Đã tải lên.", "en": "Uploaded."},
    "bn.upload.failed": {
        "vi": "Tải tệp lên không thành công; hãy thử lại.",
        "en": "The upload failed; try again.",
    },
    "bn.upload.too_large": {"vi": "Tệp quá lớn.", "en": "The file is too large."},
    "bn.upload.bad_type": {
        "vi": "Không nhận dạng được tệp: chỉ nhận âm thanh, hình ảnh, video, PDF hoặc văn bản"
        " UTF-8.",
        "en": "Unrecognised file: only audio, image, video, PDF or UTF-8 text.",
    },
    "bn.upload.empty": {"vi": "Tệp rỗng.", "en": "The file is empty."},
    "bn.upload.login": {
        "vi": "Phiên làm việc đã hết; hãy đăng nhập lại.",
        "en": "The session has ended; sign in again.",
    },
    "bn.preview": {"vi": "Xem trước", "en": "Preview"},
    "bn.preview_empty": {
        "vi": "Chưa có nội dung để xem trước.",
        "en": "Nothing to preview yet.",
    },
    "bn.open_document": {"vi": "Mở tài liệu", "en": "Open the document"},
    "bn.schedule": {"vi": "Thời gian phát", "en": "Schedule"},
    "bn.times_hint": {
        "vi": "Giờ phát dạng HH:MM, cách nhau bằng dấu phẩy. Bản tin ưu tiên cần đề xuất giờ"
        " phát; để trống: phát theo chương trình của xã.",
        "en": "Air times as HH:MM, separated by commas. A priority bulletin needs a proposed"
        " air time; empty: in the commune's programme.",
    },
    "bn.choose_category": {"vi": "— Chọn lĩnh vực —", "en": "— Choose a category —"},
    "bn.targets_proposal": {
        "vi": "Đề xuất nơi phát; bộ phận thẩm định của tỉnh quyết định khi phê duyệt.",
        "en": "A proposal; the province's reviewers decide on approval.",
    },
    "bn.no_communes": {"vi": "Chưa có xã nào.", "en": "No communes yet."},
    "bn.save": {"vi": "Lưu", "en": "Save"},
    "bn.save_draft": {"vi": "Lưu nháp", "en": "Save as draft"},
    "bn.save_submit": {"vi": "Lưu và gửi thẩm định", "en": "Save and submit for review"},
    "bn.saved_not_submitted": {
        "vi": "Bản tin đã được lưu nháp nhưng chưa gửi thẩm định được. Hãy sửa các mục dưới"
        " đây rồi gửi lại.",
        "en": "The bulletin was saved as a draft but could not be submitted. Fix the fields"
        " below and submit again.",
    },
    # ---- fields
    "bn.f.title": {"vi": "Tiêu đề", "en": "Title"},
    "bn.f.kind": {"vi": "Hình thức", "en": "Kind"},
    "bn.f.text": {"vi": "Nội dung", "en": "Text"},
    "bn.f.media": {"vi": "Tệp âm thanh, hình ảnh, video hoặc tài liệu", "en": "Media file"},
    "bn.f.priority": {"vi": "Mức ưu tiên đề xuất", "en": "Proposed priority"},
    "bn.f.category": {"vi": "Lĩnh vực nội dung", "en": "Content category"},
    "bn.f.targets": {"vi": "Nơi phát (xã, phường)", "en": "Targets (communes)"},
    "bn.f.schedule": {"vi": "Thời gian phát", "en": "Schedule"},
    "bn.f.valid_from": {"vi": "Phát từ", "en": "Valid from"},
    "bn.f.valid_until": {"vi": "Phát đến", "en": "Valid until"},
    "bn.f.times": {"vi": "Giờ phát", "en": "Air times"},
    "bn.f.repeats": {"vi": "Số lần phát", "en": "Repeats"},
    "bn.f.display_seconds": {"vi": "Thời gian hiển thị (giây)", "en": "Display seconds"},
    "bn.f.comment": {"vi": "Ý kiến thẩm định", "en": "Review comment"},
    "bn.f.note": {"vi": "Ghi chú (không bắt buộc)", "en": "Note (optional)"},
    "bn.f.other": {"vi": "Dữ liệu", "en": "Input"},
    # ---- field problems
    "bn.err.fix": {
        "vi": "Chưa lưu được. Hãy kiểm tra các mục sau:",
        "en": "Not saved. Check these fields:",
    },
    "bn.err.required": {"vi": "cần nhập", "en": "is required"},
    "bn.err.category": {"vi": "hãy chọn lĩnh vực nội dung", "en": "choose the content category"},
    "bn.err.words": {
        "vi": "tin viết cần có 300–500 từ",
        "en": "a text bulletin needs 300–500 words",
    },
    "bn.err.air_time": {
        "vi": "bản tin ưu tiên cần đề xuất giờ phát",
        "en": "a priority bulletin needs a proposed air time",
    },
    "bn.err.targets": {
        "vi": "hãy chọn ít nhất một xã hoặc thiết bị",
        "en": "choose at least one commune or device",
    },
    "bn.err.unknown_target": {
        "vi": "không có xã hoặc thiết bị này",
        "en": "unknown commune or device",
    },
    "bn.err.past": {"vi": "đã qua", "en": "is already in the past"},
    "bn.err.order": {
        "vi": "thời điểm kết thúc phải sau thời điểm bắt đầu",
        "en": "must end after it starts",
    },
    "bn.err.media_missing": {
        "vi": "hãy tải lên tệp phù hợp với hình thức bản tin",
        "en": "upload a file that fits the bulletin's kind",
    },
    # ---- detail
    "bn.content": {"vi": "Nội dung", "en": "Content"},
    "bn.details": {"vi": "Thông tin", "en": "Details"},
    "bn.created_by": {"vi": "Người tạo", "en": "Created by"},
    "bn.published_at": {"vi": "Phát hành lúc", "en": "Published"},
    "bn.cancelled_at": {"vi": "Huỷ lúc", "en": "Cancelled"},
    "bn.source_level": {"vi": "Cấp nguồn tin", "en": "Source level"},
    "bn.level.central": {"vi": "Trung ương", "en": "Central"},
    "bn.level.province": {"vi": "Tỉnh", "en": "Province"},
    "bn.level.commune": {"vi": "Xã, phường", "en": "Commune"},
    "bn.device": {"vi": "Thiết bị", "en": "Device"},
    "bn.no_targets": {
        "vi": "Chưa chọn nơi phát.",
        "en": "No targets chosen yet.",
    },
    "bn.in_programme": {
        "vi": "Theo chương trình của xã",
        "en": "In the commune's programme",
    },
    "bn.review_comment": {"vi": "Ý kiến thẩm định", "en": "Reviewer's comment"},
    "bn.actions": {"vi": "Thao tác", "en": "Actions"},
    "bn.edit": {"vi": "Sửa", "en": "Edit"},
    "bn.submit": {"vi": "Gửi thẩm định", "en": "Submit for review"},
    "bn.publish": {"vi": "Phát hành ngay", "en": "Publish now"},
    "bn.publish_confirm": {
        "vi": "Phát hành bản tin này tới các nơi đã chọn?",
        "en": "Publish this bulletin to its targets?",
    },
    "bn.cancel": {"vi": "Huỷ phát hành", "en": "Cancel the bulletin"},
    "bn.cancel_confirm": {
        "vi": "Huỷ bản tin này trên mọi thiết bị?",
        "en": "Cancel this bulletin on every device?",
    },
    "bn.return_title": {"vi": "Trả lại để sửa", "en": "Return for edits"},
    "bn.return": {"vi": "Trả lại", "en": "Return"},
    "bn.approve_title": {"vi": "Phê duyệt và phát hành", "en": "Approve and publish"},
    "bn.approve": {"vi": "Phê duyệt và phát hành", "en": "Approve and publish"},
    "bn.history": {"vi": "Lịch sử xử lý", "en": "History"},
    "bn.no_history": {"vi": "Chưa có lịch sử.", "en": "No history yet."},
    "bn.h.at": {"vi": "Thời điểm", "en": "When"},
    "bn.h.actor": {"vi": "Người thực hiện", "en": "Who"},
    "bn.h.action": {"vi": "Thao tác", "en": "Action"},
    "bn.h.state": {"vi": "Trạng thái", "en": "State"},
    "bn.h.comment": {"vi": "Ý kiến", "en": "Comment"},
    "bn.action.create": {"vi": "Tạo", "en": "Created"},
    "bn.action.edit": {"vi": "Sửa", "en": "Edited"},
    "bn.action.submit": {"vi": "Gửi thẩm định", "en": "Submitted"},
    "bn.action.return": {"vi": "Trả lại", "en": "Returned"},
    "bn.action.approve": {"vi": "Phê duyệt, phát hành", "en": "Approved and published"},
    "bn.action.publish": {"vi": "Phát hành", "en": "Published"},
    "bn.action.cancel": {"vi": "Huỷ", "en": "Cancelled"},
    # ---- review queue
    "bn.review_title": {"vi": "Bản tin chờ thẩm định", "en": "Bulletins awaiting review"},
    "bn.review_hint": {
        "vi": "Bản tin chờ lâu nhất ở trên cùng.",
        "en": "The longest-waiting bulletin is first.",
    },
    "bn.submitted_at": {"vi": "Gửi lúc", "en": "Submitted"},
    "bn.proposed_priority": {"vi": "Mức ưu tiên đề xuất", "en": "Proposed priority"},
    "bn.resubmitted": {"vi": "Gửi lại", "en": "Resubmitted"},
    "bn.queue_empty": {
        "vi": "Không có bản tin nào chờ thẩm định.",
        "en": "No bulletin is awaiting review.",
    },
    # ---- preview before approval (hub/previews.py)
    "bn.pv.open": {"vi": "Xem trước khi phát", "en": "Preview the airing"},
    "bn.pv.title": {"vi": "Xem trước", "en": "Preview"},
    "bn.pv.hint": {
        "vi": "Thiết bị sẽ phát đúng như dưới đây: giọng đọc của cụm loa và khung hình của"
        " từng loại bảng tin, ở độ phân giải thật, do chính phần mềm của thiết bị tạo ra.",
        "en": "What the devices will air: the speakers' voice and each kind of board's"
        " frames at its real resolution, made by the devices' own software.",
    },
    "bn.pv.speakers": {"vi": "Cụm loa", "en": "Speakers"},
    "bn.pv.boards": {"vi": "Bảng tin", "en": "Boards"},
    "bn.pv.length": {"vi": "Thời lượng mỗi lần phát", "en": "Length of one airing"},
    "bn.pv.not_spoken": {
        "vi": "Bản tin này không phát trên loa.",
        "en": "This bulletin does not air on speakers.",
    },
    "bn.pv.no_boards": {
        "vi": "Bản tin này không hiển thị trên bảng tin.",
        "en": "This bulletin does not show on boards.",
    },
    "bn.pv.cannot": {"vi": "Không phát được", "en": "Cannot air"},
    "bn.pv.frame_at": {"vi": "Giây thứ", "en": "At second"},
    "bn.pv.video": {
        "vi": "Video được phát nguyên bản.",
        "en": "The video plays as it is.",
    },
    # ---- deletion (never-published bulletins, unused media)
    "bn.delete": {"vi": "Xoá bản nháp", "en": "Delete the draft"},
    "bn.deleted": {"vi": "Đã xoá bản nháp.", "en": "The draft was deleted."},
    "del.title": {"vi": "Xác nhận xoá", "en": "Confirm deletion"},
    "del.bulletin_q": {"vi": "Xoá bản tin chưa phát hành", "en": "Delete the unpublished bulletin"},
    "del.bulletin_hint": {
        "vi": "Bản tin sẽ biến mất khỏi mọi danh sách; không thể hoàn tác. Lịch sử xử lý vẫn"
        " được giữ trong nhật ký. Bản tin đã phát hành thì không xoá được, chỉ huỷ.",
        "en": "The bulletin disappears from every list; this cannot be undone. Its history is"
        " kept in the audit log. A published bulletin cannot be deleted, only cancelled.",
    },
    "del.media_q": {"vi": "Xoá tệp đã tải lên", "en": "Delete the uploaded file"},
    "del.media_hint": {
        "vi": "Không bản tin nào dùng tệp này. Xoá rồi thì không khôi phục được.",
        "en": "No bulletin uses this file. Once deleted it cannot be recovered.",
    },
    "del.media_used": {
        "vi": "Tệp đang được {} bản tin sử dụng nên không xoá được.",
        "en": "{} bulletin(s) use this file, so it cannot be deleted.",
    },
    "del.confirm": {"vi": "Xoá", "en": "Delete"},
    "del.keep": {"vi": "Không xoá", "en": "Keep it"},
    "del.back": {"vi": "Quay lại danh sách tệp", "en": "Back to the files"},
    "md.title": {"vi": "Tệp đã tải lên", "en": "Uploaded files"},
    "md.back": {"vi": "← Danh sách bản tin", "en": "← Bulletins"},
    "md.hint": {
        "vi": "Tệp không bản tin nào dùng có thể xoá; tệp của bản tin đã phát hành được giữ lại.",
        "en": "Files no bulletin uses can be deleted; a published bulletin's files are kept.",
    },
    "md.file": {"vi": "Tệp", "en": "File"},
    "md.type": {"vi": "Định dạng", "en": "Type"},
    "md.size": {"vi": "Dung lượng", "en": "Size"},
    "md.used": {"vi": "Sử dụng", "en": "Used"},
    "md.used_by": {"vi": "{} bản tin", "en": "{} bulletin(s)"},
    "md.unused": {"vi": "Chưa dùng", "en": "Unused"},
    "md.delete": {"vi": "Xoá", "en": "Delete"},
    "md.deleted": {"vi": "Đã xoá tệp.", "en": "The file was deleted."},
    "md.none": {"vi": "Chưa có tệp nào.", "en": "No files yet."},
}
