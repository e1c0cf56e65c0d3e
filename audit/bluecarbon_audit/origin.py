"""Registries of origin and the normalisation of origin ids (the double-counting guard).

A project imported from another registry, or a batch issued there, is known by (registry of
origin, id there). Spelling must not make one id two: ``VCS-2236``, ``vcs-2236``,
``VCS-\\u200b2236``, full-width ``\\uff36\\uff23\\uff33-2236`` and the bare ``2236`` are one
Verra project. So the registry comes from a list (``REGISTRIES``) and every id is reduced to a
key under a versioned rule; the database keeps keys unique, and the ledger records the key
beside the id as given.

Rule 1 (``ORIGIN_RULE``):

1. Unicode NFKC (UAX #15), then full case folding (``str.casefold``, Unicode §3.13), then NFKC
   again (case folding can produce text that is not NFKC, e.g. U+1E9E), then every format
   character (general category Cf: U+200B, U+200D, U+2060, U+FEFF, bidi controls...) removed and
   surrounding whitespace trimmed.
2. An id that still holds a control, surrogate, private-use or unassigned code point is
   refused: an unassigned one's normalisation a later Unicode version could change, and no
   registry issues any of them.
3. For a registry with a known id shape (``Registry.pattern``), the id must match it and is
   reduced to its canonical form (Verra: the bare project number without leading zeros). Any
   other registry's id stays as step 1 leaves it.

Pure: no Django. The server (``ledger/core/origin.py``) and the auditor's replay run this code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ORIGIN_RULE = 1  # the version recorded with each key; 0 = registered before keys existed

OTHER = "other"


class OriginError(ValueError):
    """An origin registry or id that cannot be used. ``code`` is stable and machine readable:
    ``unknown_registry``, ``invalid_characters``, ``required``, ``format``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Registry:
    code: str  # as stored and recorded
    name: str
    aliases: tuple[str, ...] = ()  # other spellings accepted as input (normalised on lookup)
    # The id's shape after step 1 of the rule, with one group: the canonical key. None when
    # the shape is not fixed (or not verified): then any non-empty id, normalised.
    pattern: re.Pattern[str] | None = None
    canonical: str = ""  # how the canonical key is built from the group: "number" or "gs"
    id_example: str = ""


# The maintained list. Add a registry here (never rename or remove a code: entries refer to
# them); a new shape for an existing registry is a new rule version.
REGISTRIES: tuple[Registry, ...] = (
    Registry(
        "verra",
        "Verra, Verified Carbon Standard (VCS)",
        aliases=("vcs", "verra vcs", "verra-vcs", "verified carbon standard"),
        # Verra's registry shows the bare number (registry.verra.org/app/projectDetail/VCS/2236);
        # documents write VCS-2236, VCS 2236 or VCS2236.
        pattern=re.compile(r"(?:vcs[\s\-_:#]*)?0*([0-9]+)"),
        canonical="number",
        id_example="VCS-2236 or 2236",
    ),
    Registry(
        "gold-standard",
        "Gold Standard for the Global Goals",
        aliases=("gs", "gold standard", "goldstandard", "gold_standard"),
        pattern=re.compile(r"(?:gs[\s\-_:#]*)?0*([0-9]+)"),
        canonical="gs",
        id_example="GS1234 or 1234",
    ),
    Registry(
        "puro",
        "Puro.earth",
        aliases=("puro.earth", "puro earth", "puro-earth"),
        pattern=re.compile(r"0*([0-9]+)"),
        canonical="number",
        id_example="1234",
    ),
    Registry(
        "ccer",
        "China Certified Emission Reduction (CCER) registry",
        aliases=("china ccer", "china-ccer", "国家核证自愿减排量"),
        id_example="as the CCER registry numbers the project",
    ),
    Registry(
        "xiamen-marine-sink",
        "Xiamen marine carbon sink trading platform (厦门海洋碳汇交易服务平台)",
        aliases=("xiamen", "厦门海洋碳汇交易服务平台", "厦门产权交易中心"),
        id_example="the platform's own number",
    ),
    Registry(
        "hainan-ice",
        "Hainan International Carbon Emission Exchange (海南国际碳排放权交易中心)",
        aliases=("hainan", "hiece", "海南国际碳排放权交易中心"),
        id_example="the exchange's own number",
    ),
    Registry(
        "ningbo-prtn",
        "Ningbo public resource trading network (宁波市公共资源交易网), Xiangshan lots",
        aliases=("ningbo", "宁波市公共资源交易网"),
        id_example="the announcement's number",
    ),
    Registry(OTHER, "Any other registry (the id is free text, still normalised)"),
)

_BY_CODE = {r.code: r for r in REGISTRIES}

# Unicode general categories refused in ids (step 2). Cf is removed, not refused.
_REFUSED = {"Cc", "Cs", "Co", "Cn"}


def normalise(text: str) -> str:
    """Step 1 of the rule: NFKC, case-folded, format characters removed, whitespace trimmed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf").strip()


def _clean(text: str, what: str) -> str:
    key = normalise(text)
    # After trimming: a tab or newline pasted around an id goes, one inside it is refused.
    bad = sorted({f"U+{ord(ch):04X}" for ch in key if unicodedata.category(ch) in _REFUSED})
    if bad:
        raise OriginError(
            "invalid_characters", f"{what} holds control or unassigned characters ({bad[0]})"
        )
    if not key:
        raise OriginError("required", f"{what} is empty")
    return key


_LOOKUP = {normalise(name): r.code for r in REGISTRIES for name in (r.code, *r.aliases)}


def registry_code(value: str, *, local: frozenset[str] = frozenset()) -> str:
    """The list's code for a registry as typed (any spelling of its code or an alias), or, for
    a registry that this ledger's own registry organizations run (``local``, their handles), the
    handle. Raises ``OriginError("unknown_registry")`` for anything else: say ``other``."""
    key = normalise(value)
    if key in _LOOKUP:
        return _LOOKUP[key]
    for handle in local:
        if normalise(handle) == key:
            return handle
    raise OriginError(
        "unknown_registry",
        f"unknown registry of origin {value!r}: one of {', '.join(_BY_CODE)}",
    )


def origin_key(registry: str, origin_id: str) -> str:
    """The key of a project id at ``registry`` (a code from the list or a local handle)."""
    key = _clean(origin_id, "origin id")
    r = _BY_CODE.get(registry)
    if r is None or r.pattern is None:
        return key
    m = r.pattern.fullmatch(key)
    if m is None:
        raise OriginError("format", f"not a {r.name} project id (e.g. {r.id_example})")
    number = str(int(m.group(1)))
    return "gs" + number if r.canonical == "gs" else number


def tx_key(origin_tx_id: str) -> str:
    """The key of an issuance's id at its registry of origin: step 1 and 2 only (the
    registries number issuances in shapes we do not fix)."""
    return _clean(origin_tx_id, "origin transaction id")


def legacy_project_key(registry: str, origin_id: str) -> tuple[str, str]:
    """What a row stored before rule 1 would be under it, as (registry, key), for finding
    near-duplicates among old rows; never raises (an unknown registry or an id of the wrong
    shape keeps its step-1 form)."""
    try:
        code = registry_code(registry)
    except OriginError:
        code = normalise(registry)
    try:
        return code, origin_key(code, origin_id)
    except OriginError:
        return code, normalise(origin_id)


def legacy_tx_key(registry: str, origin_tx_id: str) -> tuple[str, str]:
    try:
        code = registry_code(registry)
    except OriginError:
        code = normalise(registry)
    return code, normalise(origin_tx_id)
