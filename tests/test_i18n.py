"""The labels' gettext catalogues (hub/locale, edge_agent/locale): complete in both languages,
one entry per key, the same placeholders in each language, every key the code and templates
name known, readable and compilable by Babel (what translators' tools and `pybabel` do), and
the agent's committed .mo files compiled from their .po."""

from __future__ import annotations

import io
import re
import string
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from gettext import GNUTranslations, c2py
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po

from edge_agent import i18n as agent_i18n
from hub import i18n
from hub.audit_words import detail_words
from hub.categories import CATEGORIES
from hub.i18n import CATALOGUE, LANGS, PLURALS, translate, translate_plural

ROOT = Path(__file__).resolve().parent.parent
HUB_PO = {lang: i18n.catalogue_path(lang) for lang in LANGS}
AGENT_PO = {
    lang: agent_i18n.LOCALE_DIR / lang / "LC_MESSAGES" / f"{agent_i18n.DOMAIN}.po" for lang in LANGS
}
ALL_PO = [*HUB_PO.values(), *AGENT_PO.values()]
COMPILE_AGENT = "pybabel compile -d edge_agent/locale -D agent"


def _read(path: Path) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, abort_invalid=True)


def _key(msgid: str | tuple[str, ...] | list[str]) -> str:
    """A counted label's msgid is (key, key): its key is the first."""
    return msgid if isinstance(msgid, str) else msgid[0]


def _fields(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


# ---------------------------------------------------------------- complete and consistent


def test_hub_labels_are_complete_in_both_languages() -> None:
    assert len(CATALOGUE) > 900 and PLURALS
    for key, labels in CATALOGUE.items():
        assert set(labels) == set(LANGS), key
        assert all(labels[lang].strip() for lang in LANGS), key
    for key, forms in PLURALS.items():
        assert set(forms) == set(LANGS), key
        for lang in LANGS:
            assert len(forms[lang]) == _read(HUB_PO[lang]).num_plurals, (key, lang)
            assert all(form.strip() for form in forms[lang]), (key, lang)
    assert not set(CATALOGUE) & set(PLURALS)


def test_agent_messages_are_complete_in_both_languages() -> None:
    assert len(agent_i18n.MESSAGES) > 150
    for key, texts in agent_i18n.MESSAGES.items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key


def test_each_language_has_the_same_placeholders() -> None:
    """A label formatted with {n} or {until} in one language and not the other would raise
    (or drop the value) only when a page in that language is shown."""
    for key, labels in [*CATALOGUE.items(), *agent_i18n.MESSAGES.items()]:
        assert _fields(labels["vi"]) == _fields(labels["en"]), key
    for key, forms in PLURALS.items():
        every = [_fields(form) for lang in LANGS for form in forms[lang]]
        assert all(fields == every[0] for fields in every), key


@pytest.mark.parametrize("path", ALL_PO, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_key_is_written_once_and_nothing_is_fuzzy(path: Path) -> None:
    """Babel keeps the last of two entries with one msgid silently: count them in the text."""
    written = re.findall(r'^msgid "(.+)"$', path.read_text(encoding="utf-8"), re.MULTILINE)
    catalogue = _read(path)
    read = [_key(m.id) for m in catalogue if m.id]
    assert sorted(set(written)) == sorted(read)
    duplicates = {key for key in written if written.count(key) > 1}
    assert not duplicates, duplicates
    assert not [m.id for m in catalogue if m.id and m.fuzzy], "fuzzy entries are not used"
    assert not catalogue.obsolete, "remove obsolete (#~) entries"


def test_both_languages_of_a_catalogue_hold_the_same_keys() -> None:
    for files in (HUB_PO, AGENT_PO):
        vi, en = ({_key(m.id) for m in _read(p) if m.id} for p in files.values())
        assert vi == en, vi ^ en


# ---------------------------------------------------------------- every key used is known


def test_hub_templates_and_code_use_only_known_keys() -> None:
    used: set[str] = set()
    counted: set[str] = set()
    for template in (ROOT / "hub" / "templates").glob("*.html"):
        text = template.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_.]+)["']\s*\)""", text))
        counted |= set(re.findall(r"""\btn\(\s*["']([a-z0-9_.]+)["']\s*,""", text))
        # Labels are never typed into templates: every visible word goes through t().
        assert "Đăng" not in text and "Log in" not in text, template.name
    for module in (ROOT / "hub").rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\btranslate\(\s*["']([a-z0-9_.]+)["']""", text))
        counted |= set(re.findall(r"""\btranslate_plural\(\s*["']([a-z0-9_.]+)["']""", text))
    used = _without_prefixes(used, CATALOGUE)
    assert len(used) > 500 and counted
    assert used <= set(CATALOGUE), used - set(CATALOGUE)
    assert counted <= set(PLURALS), counted - set(PLURALS)


def test_agent_templates_script_and_code_use_only_known_keys() -> None:
    package = ROOT / "edge_agent"
    used: set[str] = set()
    for template in (package / "templates").glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*[,)]""", template.read_text()))
    script = (package / "static" / "app.js").read_text(encoding="utf-8")
    used |= set(re.findall(r"""\btr\(\s*["']([a-z0-9_]+)["']""", script))
    for module in package.rglob("*.py"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']""", module.read_text()))
    # Keys built from a prefix and a value.
    used |= {f"page_kind_{kind}" for kind in ("speaker", "board")}
    used |= {f"{prefix}_{p}" for prefix in ("priority", "page_priority") for p in PRIORITIES}
    used = _without_prefixes(used, agent_i18n.MESSAGES)
    assert len(used) > 100
    assert used <= set(agent_i18n.MESSAGES), used - set(agent_i18n.MESSAGES)


PRIORITIES = ("emergency", "priority", "normal")


def _without_prefixes(used: set[str], known: Iterable[str]) -> set[str]:
    """Keys built from a prefix and a value ("dv.unit." ~ unit): the prefix must name some."""
    prefixes = {key for key in used if key.endswith((".", "_"))}
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in known), prefix
    return used - prefixes


def test_every_category_has_its_name_and_no_name_is_left_over() -> None:
    names = {key.removeprefix("rp.cat.") for key in CATALOGUE if key.startswith("rp.cat.")}
    assert names == {c.code for c in CATEGORIES}
    assert CATEGORIES[0].name("vi").startswith("Chủ trương, đường lối của Đảng")
    assert CATEGORIES[0].name("en") == "Party guidelines, State policy and law"


# ---------------------------------------------------------------- behaviour


def test_translate_keeps_its_behaviour() -> None:
    assert translate("nav.devices", "vi") == "Thiết bị"
    assert translate("nav.devices", "en") == "Devices"
    with pytest.raises(KeyError):
        translate("nav.no_such_label", "vi")
    # Placeholders come back unformatted, for the caller to fill.
    assert translate("dv.ago", "en").format(5) and "{" in translate("login.failed", "vi")
    assert "{until}" in translate("login.failed", "en")


def test_counted_labels_take_the_form_for_the_number() -> None:
    assert translate_plural("md.used_by", 1, "en").format(1) == "1 bulletin"
    assert translate_plural("md.used_by", 0, "en").format(0) == "0 bulletins"
    assert translate_plural("md.used_by", 7, "en").format(7) == "7 bulletins"
    # Vietnamese nouns do not change with the number.
    assert {translate_plural("md.used_by", n, "vi") for n in (0, 1, 7)} == {"{} bản tin"}
    assert detail_words("1 devices", "en") == "1 device"
    assert detail_words("12 devices", "en") == "12 devices"
    assert detail_words("1 sessions ended", "vi") == "1 phiên kết thúc"
    # An ordinal is not a count: one form.
    assert detail_words("wrong password (1)", "en") == "wrong password (failure 1)"
    with pytest.raises(KeyError):
        translate_plural("nav.devices", 2, "en")  # not a counted label
    with pytest.raises(KeyError):
        translate("md.used_by", "en")  # a counted label needs its number


# ---------------------------------------------------------------- what tools do with the files


@pytest.mark.parametrize("path", ALL_PO, ids=lambda p: str(p.relative_to(ROOT)))
def test_babel_reads_checks_compiles_and_writes_the_catalogue_back(path: Path) -> None:
    catalogue = _read(path)
    assert str(catalogue.locale) == path.parents[1].name
    # Babel's own checks (plural forms count, printf placeholders), as `pybabel compile
    # --check`-style tools run them.
    problems = [(m.id, errors) for m, errors in catalogue.check()]
    assert not problems, problems
    # Compiled, the standard library's gettext answers every entry with the .po's text.
    mo = io.BytesIO()
    write_mo(mo, catalogue)
    mo.seek(0)
    compiled = GNUTranslations(mo)
    plural = c2py(catalogue.plural_expr)
    for message in catalogue:
        if isinstance(message.id, str) and message.id:
            assert compiled.gettext(message.id) == message.string
        elif message.id:
            for n in (1, 2):
                form = message.string[plural(n)]
                assert compiled.ngettext(message.id[0], message.id[1], n) == form
    # Written back and read again (what an editor saving the file does): the same entries.
    written = io.BytesIO()
    write_po(written, catalogue, width=100)
    written.seek(0)
    again = read_po(written, abort_invalid=True)
    assert [(m.id, m.string, m.auto_comments) for m in again] == [
        (m.id, m.string, m.auto_comments) for m in catalogue
    ]


def test_pybabel_compiles_the_catalogues(tmp_path: Path) -> None:
    """The command the README gives translators, run as they would run it."""
    pybabel = Path(sys.executable).parent / "pybabel"
    for package, domain in (("hub", "hub"), ("edge_agent", "agent")):
        out = tmp_path / package
        for lang in LANGS:
            source = ROOT / package / "locale" / lang / "LC_MESSAGES" / f"{domain}.po"
            target = out / lang / "LC_MESSAGES" / f"{domain}.mo"
            target.parent.mkdir(parents=True)
            result = subprocess.run(
                [str(pybabel), "compile", "--statistics", "-i", str(source), "-o", str(target)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert "(100%) translated" in result.stderr, result.stderr
            assert target.stat().st_size > 1000


def test_the_agents_compiled_catalogues_match_their_sources() -> None:
    """The device reads agent.mo; it must say what agent.po says."""
    for po in AGENT_PO.values():
        source = {m.id: m.string for m in _read(po) if isinstance(m.id, str) and m.id}
        with po.with_suffix(".mo").open("rb") as mo:
            compiled = agent_i18n._Catalogue(mo).messages()
        assert compiled == source, f"{po.relative_to(ROOT)} changed: run {COMPILE_AGENT}"


def test_a_fuzzy_entry_reads_as_missing_and_a_broken_file_fails_at_load(tmp_path: Path) -> None:
    for lang in LANGS:
        catalogue = Catalog(locale=lang, domain="hub", fuzzy=False)
        catalogue.add("a.sure", "sure")
        catalogue.add("a.guess", "guess", flags=["fuzzy"])
        path = i18n.catalogue_path(lang, tmp_path)
        path.parent.mkdir(parents=True)
        with path.open("wb") as po:
            write_po(po, catalogue)
    loaded = i18n.load(tmp_path)
    assert loaded.labels == {"a.sure": {"vi": "sure", "en": "sure"}}
    i18n.catalogue_path("en", tmp_path).write_text('msgid "a.sure"\nmsgstr "sure"\nsure?\n')
    with pytest.raises(PoFileError, match="misformatted"):
        i18n.load(tmp_path)


def test_installs_carry_the_catalogues() -> None:
    """pip install (provision.sh on a Pi, the hub's servers) and the release wheel."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    for package, suffixes in (("hub", (".po",)), ("edge_agent", (".po", ".mo"))):
        files = [p for p in (ROOT / package / "locale").rglob("*") if p.is_file()]
        assert {p.suffix for p in files} == set(suffixes), package
        for file in files:
            relative = file.relative_to(ROOT / package)
            assert any(relative.match(pattern) for pattern in package_data[package]), relative
