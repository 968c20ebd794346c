"""OASIS Common Alerting Protocol 1.2: the structure, written here from the specification
(OASIS Standard CAP-V1.2, 1 July 2010, section 3 "Alert Message Data Dictionary" and the
XML schema of its Appendix A), and a validator that reads an already parsed element tree.

Pure: an `xml.etree.ElementTree.Element` in (parsed by the caller with defusedxml: no
entities, no external references), a `CapAlert` or a list of `CapProblem` out, each naming
the element by its path (`alert/info[1]/urgency`). What the schema says, this checks: every
element in its place in the sequence, the required ones present, the counted ones not
repeated, the enumerations, the dateTime form with its zone and without "Z" (section 3.3.2),
the identifier and sender without spaces, commas or restricted characters (3.2.1), the
conditional elements (`restriction` when scope is Restricted, `addresses` when Private,
`ceiling` only with `altitude`), `references` in its "sender,identifier,sent" form, numbers
where the dictionary asks for numbers.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from xml.etree.ElementTree import Element

NS = "urn:oasis:names:tc:emergency:cap:1.2"
#: A digital signature (XML-DSig) may close the alert (Appendix A: xs:any in this namespace).
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"


class Kind(Enum):
    TEXT = "text"
    #: A CAP dateTime: "2002-05-24T16:49:00-07:00", zone required, "Z" not allowed.
    DATETIME = "dateTime"
    #: A token without whitespace, ',' '<' or '&' (identifier, sender).
    ID = "id"
    INTEGER = "integer"
    DECIMAL = "decimal"
    URI = "anyURI"
    BASE64 = "base64Binary"
    #: "sender,identifier,sent" triples separated by whitespace.
    REFERENCES = "references"
    #: A valueName/value pair (eventCode, parameter, geocode).
    PAIR = "pair"
    POLYGON = "polygon"
    CIRCLE = "circle"
    #: A complex element with children of its own (info, resource, area).
    GROUP = "group"


@dataclass(frozen=True)
class Spec:
    name: str
    #: At least this many; at most `most` (None: unbounded).
    least: int
    most: int | None
    kind: Kind = Kind.TEXT
    #: For enumerated text: the allowed values.
    values: tuple[str, ...] = ()


UNBOUNDED = None
STATUS = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPE = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPE = ("Public", "Restricted", "Private")
CATEGORY = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
RESPONSE_TYPE = (
    "Shelter",
    "Evacuate",
    "Prepare",
    "Execute",
    "Avoid",
    "Monitor",
    "Assess",
    "AllClear",
    "None",
)
URGENCY = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITY = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTY = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

#: The schema: each complex element's children, in the order the sequence requires.
STRUCTURE: dict[str, tuple[Spec, ...]] = {
    "alert": (
        Spec("identifier", 1, 1, Kind.ID),
        Spec("sender", 1, 1, Kind.ID),
        Spec("sent", 1, 1, Kind.DATETIME),
        Spec("status", 1, 1, values=STATUS),
        Spec("msgType", 1, 1, values=MSG_TYPE),
        Spec("source", 0, 1),
        Spec("scope", 1, 1, values=SCOPE),
        Spec("restriction", 0, 1),
        Spec("addresses", 0, 1),
        Spec("code", 0, UNBOUNDED),
        Spec("note", 0, 1),
        Spec("references", 0, 1, Kind.REFERENCES),
        Spec("incidents", 0, 1),
        Spec("info", 0, UNBOUNDED, Kind.GROUP),
    ),
    "info": (
        Spec("language", 0, 1),
        Spec("category", 1, UNBOUNDED, values=CATEGORY),
        Spec("event", 1, 1),
        Spec("responseType", 0, UNBOUNDED, values=RESPONSE_TYPE),
        Spec("urgency", 1, 1, values=URGENCY),
        Spec("severity", 1, 1, values=SEVERITY),
        Spec("certainty", 1, 1, values=CERTAINTY),
        Spec("audience", 0, 1),
        Spec("eventCode", 0, UNBOUNDED, Kind.PAIR),
        Spec("effective", 0, 1, Kind.DATETIME),
        Spec("onset", 0, 1, Kind.DATETIME),
        Spec("expires", 0, 1, Kind.DATETIME),
        Spec("senderName", 0, 1),
        Spec("headline", 0, 1),
        Spec("description", 0, 1),
        Spec("instruction", 0, 1),
        Spec("web", 0, 1, Kind.URI),
        Spec("contact", 0, 1),
        Spec("parameter", 0, UNBOUNDED, Kind.PAIR),
        Spec("resource", 0, UNBOUNDED, Kind.GROUP),
        Spec("area", 0, UNBOUNDED, Kind.GROUP),
    ),
    "resource": (
        Spec("resourceDesc", 1, 1),
        Spec("mimeType", 1, 1),
        Spec("size", 0, 1, Kind.INTEGER),
        Spec("uri", 0, 1, Kind.URI),
        Spec("derefUri", 0, 1, Kind.BASE64),
        Spec("digest", 0, 1),
    ),
    "area": (
        Spec("areaDesc", 1, 1),
        Spec("polygon", 0, UNBOUNDED, Kind.POLYGON),
        Spec("circle", 0, UNBOUNDED, Kind.CIRCLE),
        Spec("geocode", 0, UNBOUNDED, Kind.PAIR),
        Spec("altitude", 0, 1, Kind.DECIMAL),
        Spec("ceiling", 0, 1, Kind.DECIMAL),
    ),
}

# 3.3.2: "2002-05-24T16:49:00-07:00"; fractions of a second are an xs:dateTime liberty the
# dictionary's examples never use but the schema allows. The offset is mandatory.
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}$")
_ID_FORBIDDEN = re.compile(r"[\s,<&]")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_POINT = r"[+-]?\d+(\.\d+)?,[+-]?\d+(\.\d+)?"
_POLYGON = re.compile(rf"^{_POINT}(\s+{_POINT}){{3,}}$")
_CIRCLE = re.compile(rf"^{_POINT}\s+\d+(\.\d+)?$")
_SHA1_HEX = re.compile(r"^[0-9a-fA-F]{40}$")
_URI = re.compile(r"^\S+$")


@dataclass(frozen=True)
class CapProblem:
    #: The element, as a path: "alert/info[2]/area[1]/areaDesc".
    element: str
    message: str


class CapInvalid(Exception):
    def __init__(self, problems: list[CapProblem]) -> None:
        super().__init__("; ".join(f"{p.element}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Pair:
    name: str
    value: str


@dataclass(frozen=True)
class Resource:
    description: str
    mime_type: str
    size: int | None
    uri: str | None
    #: The derefUri's bytes, decoded.
    deref: bytes | None
    #: SHA-1 hex, lower case.
    digest: str | None


@dataclass(frozen=True)
class Area:
    description: str
    geocodes: tuple[Pair, ...]


@dataclass(frozen=True)
class Info:
    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    sender_name: str | None
    headline: str | None
    description: str | None
    instruction: str | None
    resources: tuple[Resource, ...]
    areas: tuple[Area, ...]


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    references: tuple[Reference, ...]
    infos: tuple[Info, ...] = field(default_factory=tuple)


def parse_datetime(text: str) -> datetime | None:
    """A CAP dateTime, or None when it is not one (no zone, a "Z", not a real date)."""
    if not _DATETIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def format_datetime(value: datetime) -> str:
    """A CAP dateTime: whole seconds with the offset as "+07:00" (never "Z")."""
    if value.tzinfo is None:
        raise ValueError("a CAP time needs a zone")
    return value.replace(microsecond=0).isoformat()


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _text(element: Element) -> str:
    return (element.text or "").strip()


def _check_value(spec: Spec, element: Element, path: str, problems: list[CapProblem]) -> None:
    value = _text(element)

    def bad(message: str) -> None:
        problems.append(CapProblem(path, message))

    if spec.kind is Kind.GROUP:
        return
    if spec.kind is Kind.PAIR:
        _check_pair(element, path, problems)
        return
    if len(element):
        bad("holds elements; a value was expected")
        return
    if not value:
        bad("is empty")
        return
    if spec.values and value not in spec.values:
        bad(f"{value!r} is not one of {', '.join(spec.values)}")
    elif spec.kind is Kind.DATETIME and parse_datetime(value) is None:
        bad(f"{value!r} is not a CAP dateTime such as 2026-07-01T16:49:00+07:00 (zone required)")
    elif spec.kind is Kind.ID and _ID_FORBIDDEN.search(value):
        bad("must not contain spaces, commas, '<' or '&'")
    elif spec.kind is Kind.INTEGER and not _INTEGER.match(value):
        bad(f"{value!r} is not an integer")
    elif spec.kind is Kind.DECIMAL and not _DECIMAL.match(value):
        bad(f"{value!r} is not a number")
    elif spec.kind is Kind.URI and not _URI.match(value):
        bad("is not a URI")
    elif spec.kind is Kind.POLYGON and not _POLYGON.match(value):
        bad("is not a closed polygon of at least four 'lat,lon' points")
    elif spec.kind is Kind.POLYGON and value.split()[0] != value.split()[-1]:
        bad("the first and last points must be the same")
    elif spec.kind is Kind.CIRCLE and not _CIRCLE.match(value):
        bad("is not 'lat,lon radius'")
    elif spec.kind is Kind.BASE64:
        try:
            base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            bad("is not base64")
    elif spec.kind is Kind.REFERENCES:
        for i, triple in enumerate(value.split()):
            parts = triple.split(",")
            if len(parts) != 3 or not all(parts) or parse_datetime(parts[2]) is None:
                bad(f"entry {i + 1} {triple!r} is not sender,identifier,sent")


def _check_pair(element: Element, path: str, problems: list[CapProblem]) -> None:
    children = list(element)
    names = [_local(c.tag) for c in children]
    if names != [(NS, "valueName"), (NS, "value")]:
        problems.append(CapProblem(path, "must hold exactly valueName then value"))
        return
    if not _text(children[0]):
        problems.append(CapProblem(f"{path}/valueName", "is empty"))


def _check_group(
    name: str, element: Element, path: str, problems: list[CapProblem], *, top: bool
) -> None:
    specs = STRUCTURE[name]
    order = {spec.name: i for i, spec in enumerate(specs)}
    counts: dict[str, int] = {}
    last = -1
    children = list(element)
    for index, child in enumerate(children):
        ns, local = _local(child.tag)
        if (
            top
            and ns in (DSIG_NS, XENC_NS)
            and all(_local(c.tag)[0] in (DSIG_NS, XENC_NS) for c in children[index:])
        ):
            break  # a signature or encryption block closes the alert (xs:any)
        if ns != NS:
            problems.append(CapProblem(f"{path}/{local}", f"is not in the CAP 1.2 namespace {NS}"))
            continue
        if local not in order:
            problems.append(CapProblem(f"{path}/{local}", f"is not a CAP 1.2 element of {name}"))
            continue
        counts[local] = counts.get(local, 0) + 1
        spec = specs[order[local]]
        repeated = spec.most is None or spec.most > 1
        child_path = f"{path}/{local}[{counts[local]}]" if repeated else f"{path}/{local}"
        if order[local] < last:
            problems.append(
                CapProblem(child_path, f"is out of order: it comes before {specs[last].name}")
            )
        last = max(last, order[local])
        if spec.most is not None and counts[local] > spec.most:
            problems.append(CapProblem(child_path, "appears more than once"))
            continue
        if spec.kind is Kind.GROUP:
            _check_group(local, child, child_path, problems, top=False)
        else:
            _check_value(spec, child, child_path, problems)
    for spec in specs:
        if counts.get(spec.name, 0) < spec.least:
            problems.append(CapProblem(f"{path}/{spec.name}", "is required"))
    if name == "alert":
        scope = element.findtext(f"{{{NS}}}scope", "").strip()
        if scope == "Restricted" and "restriction" not in counts:
            problems.append(
                CapProblem(f"{path}/restriction", "is required when scope is Restricted")
            )
        if scope == "Private" and "addresses" not in counts:
            problems.append(CapProblem(f"{path}/addresses", "is required when scope is Private"))
    if name == "area" and "ceiling" in counts and "altitude" not in counts:
        problems.append(CapProblem(f"{path}/ceiling", "is only allowed with altitude"))
    if name == "resource":
        digest = element.findtext(f"{{{NS}}}digest")
        if digest is not None and not _SHA1_HEX.match(digest.strip()):
            problems.append(CapProblem(f"{path}/digest", "is not a SHA-1 digest (40 hex digits)"))


def validate(root: Element) -> list[CapProblem]:
    """Everything wrong with `root` as a CAP 1.2 alert; empty when it is one."""
    ns, local = _local(root.tag)
    if local != "alert":
        return [CapProblem(local, "the document is not a CAP alert (root element must be alert)")]
    if ns != NS:
        return [CapProblem("alert", f"must be in the CAP 1.2 namespace {NS}, not {ns!r}")]
    problems: list[CapProblem] = []
    _check_group("alert", root, "alert", problems, top=True)
    return problems


def _find(element: Element, name: str) -> str | None:
    found = element.find(f"{{{NS}}}{name}")
    return _text(found) if found is not None else None


def _all(element: Element, name: str) -> list[Element]:
    return element.findall(f"{{{NS}}}{name}")


def _pairs(element: Element, name: str) -> tuple[Pair, ...]:
    return tuple(
        Pair(_find(p, "valueName") or "", _find(p, "value") or "") for p in _all(element, name)
    )


def _time(element: Element, name: str) -> datetime | None:
    text = _find(element, name)
    return parse_datetime(text) if text else None


def _resource(element: Element) -> Resource:
    deref = _find(element, "derefUri")
    size = _find(element, "size")
    digest = _find(element, "digest")
    return Resource(
        description=_find(element, "resourceDesc") or "",
        mime_type=_find(element, "mimeType") or "",
        size=int(size) if size else None,
        uri=_find(element, "uri") or None,
        deref=base64.b64decode("".join(deref.split())) if deref else None,
        digest=digest.lower() if digest else None,
    )


def _info(element: Element) -> Info:
    return Info(
        # 3.2.2: the language defaults to en-US.
        language=_find(element, "language") or "en-US",
        categories=tuple(_text(c) for c in _all(element, "category")),
        event=_find(element, "event") or "",
        urgency=_find(element, "urgency") or "",
        severity=_find(element, "severity") or "",
        certainty=_find(element, "certainty") or "",
        effective=_time(element, "effective"),
        onset=_time(element, "onset"),
        expires=_time(element, "expires"),
        sender_name=_find(element, "senderName") or None,
        headline=_find(element, "headline") or None,
        description=_find(element, "description") or None,
        instruction=_find(element, "instruction") or None,
        resources=tuple(_resource(r) for r in _all(element, "resource")),
        areas=tuple(
            Area(_find(a, "areaDesc") or "", _pairs(a, "geocode")) for a in _all(element, "area")
        ),
    )


def _references(text: str | None) -> tuple[Reference, ...]:
    out = []
    for triple in (text or "").split():
        sender, identifier, sent = triple.split(",")
        when = parse_datetime(sent)
        assert when is not None  # validated
        out.append(Reference(sender, identifier, when))
    return tuple(out)


def read_alert(root: Element) -> CapAlert:
    """The alert in `root`; CapInvalid naming every problem when it is not CAP 1.2."""
    problems = validate(root)
    if problems:
        raise CapInvalid(problems)
    sent = parse_datetime(_find(root, "sent") or "")
    assert sent is not None
    return CapAlert(
        identifier=_find(root, "identifier") or "",
        sender=_find(root, "sender") or "",
        sent=sent,
        status=_find(root, "status") or "",
        msg_type=_find(root, "msgType") or "",
        scope=_find(root, "scope") or "",
        references=_references(_find(root, "references")),
        infos=tuple(_info(i) for i in _all(root, "info")),
    )


# ---------------------------------------------------------------- the hub's reading of it


def preferred_info(infos: tuple[Info, ...], language: str = "vi-VN") -> Info | None:
    """The info block in `language` (its primary tag also counts: "vi"), else the first."""
    wanted = language.lower()
    primary = wanted.split("-")[0]
    for info in infos:
        if info.language.lower() == wanted:
            return info
    for info in infos:
        if info.language.lower().split("-")[0] == primary:
            return info
    return infos[0] if infos else None


def is_emergency(info: Info) -> bool:
    """Urgency Immediate or Expected with severity Extreme or Severe: it airs now."""
    return info.urgency in ("Immediate", "Expected") and info.severity in ("Extreme", "Severe")


def is_priority(info: Info) -> bool:
    """Below an emergency, still ahead of the ordinary programme: a severe threat further
    off, or an imminent one of moderate severity."""
    return info.severity in ("Extreme", "Severe") or (
        info.urgency in ("Immediate", "Expected") and info.severity == "Moderate"
    )
