"""Content categories of bulletins, for reports: the one list, from the regulations' content
articles (Hải Phòng Quy chế Điều 10; Thái Nguyên Quy chế Điều 11), merged where they agree.
Their names, in the regulations' Vietnamese and in English, are the labels `rp.cat.<code>` of
the hub's catalogues (hub/locale), so the API, the forms and the reports say the same."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from .errors import field_error
from .i18n import Lang, translate
from .routing import Ctx, RouteTable

routes = RouteTable("categories")


@dataclass(frozen=True)
class Category:
    code: str

    def name(self, lang: Lang) -> str:
        return translate(f"rp.cat.{self.code}", lang)


CATEGORIES: tuple[Category, ...] = (
    Category("party_policy_law"),
    Category("events_holidays"),
    Category("government_direction"),
    Category("state_management"),
    Category("socioeconomic_development"),
    Category("defence_security_order"),
    Category("disaster_emergency"),
    Category("science_culture"),
    Category("investment_potential"),
    Category("good_examples"),
    Category("law_violations"),
    Category("products_services"),
    Category("citizen_feedback"),
    Category("other"),
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
    return [CategoryOut(code=c.code, vi=c.name("vi"), en=c.name("en")) for c in CATEGORIES]
