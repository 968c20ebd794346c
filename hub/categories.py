"""Content categories of bulletins, for reports: the one list, from the regulations' content
articles (Hải Phòng Quy chế Điều 10; Thái Nguyên Quy chế Điều 11), merged where they agree."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from .errors import field_error
from .routing import Ctx, RouteTable

routes = RouteTable("categories")


@dataclass(frozen=True)
class Category:
    code: str
    vi: str
    en: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        "party_policy_law",
        "Chủ trương, đường lối của Đảng, chính sách, pháp luật của Nhà nước",
        "Party guidelines, State policy and law",
    ),
    Category(
        "events_holidays",
        "Các ngày lễ lớn, sự kiện quan trọng của quốc tế, đất nước, địa phương",
        "Major holidays and important events",
    ),
    Category(
        "government_direction",
        "Chỉ đạo, điều hành của cấp ủy, chính quyền các cấp",
        "Direction by Party committees and government at every level",
    ),
    Category(
        "state_management",
        "Hoạt động quản lý nhà nước của các cơ quan hành chính nhà nước các cấp",
        "State administration activities",
    ),
    Category(
        "socioeconomic_development",
        "Dự án, chương trình phát triển kinh tế, văn hóa, an sinh xã hội ở địa phương",
        "Local economic, cultural and social-welfare programmes",
    ),
    Category(
        "defence_security_order",
        "Quốc phòng, an ninh, trật tự, an toàn xã hội và công tác quân sự ở địa phương",
        "Defence, security, public order and local military affairs",
    ),
    Category(
        "disaster_emergency",
        "Phòng, chống thiên tai, tìm kiếm cứu nạn; hỏa hoạn; cấp cứu, dịch bệnh; thảm họa",
        "Disasters, search and rescue, fire, medical emergencies, epidemics",
    ),
    Category(
        "science_culture",
        "Kiến thức khoa học, kỹ thuật, công nghệ, kinh tế, văn hóa, xã hội;"
        " giá trị văn hóa truyền thống",
        "Science, technology, economy, culture and traditional values",
    ),
    Category(
        "investment_potential",
        "Tiềm năng, thế mạnh, chính sách thu hút đầu tư của địa phương",
        "Local potential, strengths and investment policy",
    ),
    Category(
        "good_examples",
        "Gương người tốt, việc tốt, nhân tố mới, điển hình tiên tiến",
        "Good deeds, new factors and exemplary people",
    ),
    Category(
        "law_violations",
        "Đấu tranh phòng, chống vi phạm pháp luật và các hiện tượng tiêu cực trong xã hội",
        "Fighting law violations and negative phenomena",
    ),
    Category(
        "products_services",
        "Sản phẩm, dịch vụ cần thiết phục vụ sản xuất và đời sống của người dân",
        "Products and services for production and daily life",
    ),
    Category(
        "citizen_feedback",
        "Trả lời của cơ quan có thẩm quyền đối với phản ánh của người dân",
        "Authorities' answers to citizens' feedback",
    ),
    Category(
        "other",
        "Thông tin khác theo quy định về tiếp cận thông tin và dân chủ ở cơ sở",
        "Other information (access to information, grassroots democracy)",
    ),
)

CODES = frozenset(c.code for c in CATEGORIES)
#: Given to a bulletin published directly without a category, so reports never miss one.
DEFAULT = "other"


def check_category(code: str | None, field: str = "category") -> None:
    if code is not None and code not in CODES:
        raise field_error(
            422, "unknown_category", field, f"unknown category {code!r}; see GET /api/v1/categories"
        )


class CategoryOut(BaseModel):
    code: str
    vi: str
    en: str


@routes.get(
    "/api/v1/categories", summary="Content categories of bulletins", response=list[CategoryOut]
)
async def list_categories(ctx: Ctx) -> list[CategoryOut]:
    return [CategoryOut(code=c.code, vi=c.vi, en=c.en) for c in CATEGORIES]
