"""Origin rule 1 (``bluecarbon_audit.origin``) and how the replay applies it: entries from before
the rule replay as rule 0 without a key; entries under it must carry the rule's key, once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluecarbon_audit.entry import Entry
from bluecarbon_audit.origin import (
    REGISTRIES,
    OriginError,
    legacy_project_key,
    normalise,
    origin_key,
    registry_code,
    tx_key,
)
from bluecarbon_audit.replay import RegistryState, ReplayError

INVISIBLE = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])
SPACE = st.text(st.sampled_from([" ", "\t", "\u3000", "\u00a0", "\n"]), max_size=3)


@st.composite
def confusable(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        if draw(st.booleans()):
            ch = ch.swapcase()
        if draw(st.booleans()) and "!" <= ch <= "~":
            ch = chr(ord(ch) + 0xFEE0)  # full width
        out.append(ch + "".join(draw(st.lists(INVISIBLE, max_size=2))))
    return draw(SPACE) + "".join(out) + draw(SPACE)


# ---- the rule -------------------------------------------------------------------------------


@given(
    st.sampled_from(["VCS-2236", "VCS 2236", "VCS2236", "2236", "VCS-002236"]).flatmap(confusable)
)
def test_every_spelling_of_a_verra_project_has_its_bare_number_as_key(spelling: str) -> None:
    assert origin_key("verra", spelling) == "2236"


@given(st.sampled_from(["GS1234", "GS-1234", "1234"]).flatmap(confusable))
def test_every_spelling_of_a_gold_standard_project_has_one_key(spelling: str) -> None:
    assert origin_key("gold-standard", spelling) == "gs1234"


@given(st.sampled_from(["CCER-1234-ZJ", "宁波-象山-2023-01"]).flatmap(confusable))
def test_a_free_id_is_keyed_by_its_normal_form(spelling: str) -> None:
    assert origin_key("ccer", spelling) in {"ccer-1234-zj", "宁波-象山-2023-01"}
    assert tx_key(spelling) == origin_key("other", spelling)


@given(st.text(max_size=40))
def test_normalising_twice_changes_nothing(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)


@given(st.sampled_from([(r.code, alias) for r in REGISTRIES for alias in (r.code, *r.aliases)]))
def test_any_spelling_of_a_listed_registry_names_it(pair: tuple[str, str]) -> None:
    code, alias = pair
    typed = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in alias.upper())
    assert registry_code(f" {typed}\u200b ") == code


def test_a_registry_not_on_the_list_is_refused_unless_it_is_local() -> None:
    with pytest.raises(OriginError) as err:
        registry_code("American Carbon Registry")
    assert err.value.code == "unknown_registry"
    assert registry_code("Demo-Registry", local=frozenset({"demo-registry"})) == "demo-registry"


@pytest.mark.parametrize(
    ("registry", "given_id", "code"),
    [
        ("verra", "VCS-12a", "format"),
        ("gold-standard", "VCS-12", "format"),
        ("puro", "P-1", "format"),
        ("other", "a\x07b", "invalid_characters"),
        ("other", "a\ue000", "invalid_characters"),
        ("other", "a\U000e0080", "invalid_characters"),  # unassigned: its future is unknown
        ("other", " \u200b\t", "required"),
    ],
)
def test_ids_the_rule_cannot_key_are_refused(registry: str, given_id: str, code: str) -> None:
    with pytest.raises(OriginError) as err:
        origin_key(registry, given_id)
    assert err.value.code == code


def test_rows_from_before_the_rule_are_keyed_without_failing() -> None:
    assert legacy_project_key("Verra", "VCS-\u200b2236") == ("verra", "2236")
    assert legacy_project_key("Verra", "VCS-ABC") == ("verra", "vcs-abc")
    assert legacy_project_key("Some Registry", "X\u200b1") == ("some registry", "x1")


# ---- the replay -------------------------------------------------------------------------------


def state() -> RegistryState:
    s = RegistryState()
    s.organizations = {2: {"handle": "reg"}, 3: {"handle": "dev"}}
    s.methodologies = {1: {"code": "VM0033"}}
    s.accounts = {2: {"organization": 3, "kind": "holding"}}
    return s


def register(s: RegistryState, pid: int, **origin: Any) -> None:
    project = {
        "id": pid,
        "code": f"P{pid}",
        "methodology": 1,
        "developer": 3,
        "registry": 2,
        "origin_registry": "verra",
        "origin_id": "VCS-2236",
        **origin,
    }
    s.apply(Entry(pid, b"", "", "project.register", "system:test", {"project": project}))


def test_an_entry_from_before_the_rule_replays_as_rule_0_without_a_key() -> None:
    s = state()
    register(s, 1)
    register(s, 2, origin_id="vcs-2236")  # a near-duplicate then; the command reports it
    assert (s.projects[1]["origin_rule"], s.projects[1]["origin_key"]) == (0, None)


def test_an_entry_under_the_rule_carries_the_rules_key() -> None:
    s = state()
    register(s, 1, origin_rule=1, origin_key="2236")
    assert s.projects[1]["origin_key"] == "2236"
    with pytest.raises(ReplayError, match="rule 1 gives '7'"):
        register(s, 2, origin_id="VCS-7", origin_rule=1, origin_key="vcs-7")
    with pytest.raises(ReplayError, match="unknown origin rule"):
        register(s, 3, origin_id="VCS-8", origin_rule=2, origin_key="8")
    with pytest.raises(ReplayError, match="without an origin rule"):
        register(s, 4, origin_id="VCS-9", origin_key="9")


def test_the_replay_refuses_a_second_project_with_the_same_key() -> None:
    s = state()
    register(s, 1, origin_rule=1, origin_key="2236")
    with pytest.raises(ReplayError, match="already registered"):
        register(s, 2, origin_id="2236", origin_rule=1, origin_key="2236")
    assert 2 not in s.projects
    register(s, 3, origin_registry="puro", origin_id="2236", origin_rule=1, origin_key="2236")


def test_the_replay_refuses_a_second_batch_with_the_same_transaction_key() -> None:
    s = state()
    register(s, 1, origin_rule=1, origin_key="2236")

    def issue(bid: int, tx: str | None, key: str | None) -> None:
        batch = {
            "id": bid,
            "project": 1,
            "issued": 10,
            "buffer_withheld": 0,
            "origin_registry": "verra",
            "origin_tx_id": tx,
            "origin_tx_key": key,
            "origin_rule": 1,
        }
        s.apply(Entry(bid, b"", "", "batch.issue", "system:test", {"batch": batch, "holder": 2}))

    issue(1, "VCU-1", "vcu-1")
    issue(2, None, None)
    issue(3, None, None)
    with pytest.raises(ReplayError, match="already registered"):
        issue(4, "vcu-\u200b1", "vcu-1")
    # A snapshot read back rebuilds the index from the batches.
    again = RegistryState.from_json(s.to_json())
    with pytest.raises(ReplayError, match="already registered"):
        again.apply(
            Entry(
                5,
                b"",
                "",
                "batch.issue",
                "system:test",
                {
                    "batch": {
                        "id": 5,
                        "project": 1,
                        "issued": 10,
                        "buffer_withheld": 0,
                        "origin_registry": "verra",
                        "origin_tx_id": "VCU-1",
                        "origin_tx_key": "vcu-1",
                        "origin_rule": 1,
                    },
                    "holder": 2,
                },
            )
        )
