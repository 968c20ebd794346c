"""CAP 1.2 alerts for tests, built the way warning agencies write them."""

from __future__ import annotations

from datetime import datetime, timedelta
from xml.sax.saxutils import escape

from hub.domain.cap import format_datetime
from loa_contract import VN_TZ


def when(offset: timedelta = timedelta()) -> str:
    return format_datetime(datetime.now(VN_TZ) + offset)


def area(desc: str, dvhc: str | None = None) -> str:
    geocode = (
        f"<geocode><valueName>VN-DVHC</valueName><value>{dvhc}</value></geocode>" if dvhc else ""
    )
    return f"<area><areaDesc>{escape(desc)}</areaDesc>{geocode}</area>"


def info(
    *,
    language: str = "vi-VN",
    urgency: str = "Immediate",
    severity: str = "Extreme",
    headline: str = "Cảnh báo lũ quét",
    description: str = "Mưa lớn gây lũ quét tại các xã ven sông.",
    instruction: str = "Người dân di chuyển lên vùng cao ngay.",
    expires: str | None = None,
    resources: str = "",
    areas: str = "",
) -> str:
    expires_el = f"<expires>{expires}</expires>" if expires else ""
    return (
        "<info>"
        f"<language>{language}</language>"
        "<category>Met</category>"
        "<event>Lũ quét</event>"
        "<responseType>Evacuate</responseType>"
        f"<urgency>{urgency}</urgency>"
        f"<severity>{severity}</severity>"
        "<certainty>Observed</certainty>"
        f"{expires_el}"
        "<senderName>Đài Khí tượng Thủy văn</senderName>"
        f"<headline>{escape(headline)}</headline>"
        f"<description>{escape(description)}</description>"
        f"<instruction>{escape(instruction)}</instruction>"
        f"{resources}"
        f"{areas}"
        "</info>"
    )


def alert(
    identifier: str,
    *infos: str,
    sender: str = "kttv@example.gov.vn",
    sent: str | None = None,
    status: str = "Actual",
    msg_type: str = "Alert",
    scope: str = "Public",
    references: str | None = None,
) -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{identifier}</identifier>"
        f"<sender>{sender}</sender>"
        f"<sent>{sent or when()}</sent>"
        f"<status>{status}</status>"
        f"<msgType>{msg_type}</msgType>"
        f"<scope>{scope}</scope>"
        f"{refs}"
        f"{''.join(infos)}"
        "</alert>"
    ).encode()
