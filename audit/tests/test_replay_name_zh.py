"""``name_zh``: the Chinese name of an organization, a methodology or a project, replayed by the
auditor from the entries alone. It is optional (entries written before it existed carry none and
replay as they always did), present only when given, and a project's may change through
``project.update``."""

from __future__ import annotations

from typing import Any

import pytest
from ledgers import project

from bluecarbon_audit.entry import Entry
from bluecarbon_audit.replay import RegistryState, ReplayError

TIME = "2026-12-07T08:00:00.000000Z"
ZH = "\u6e5b\u6c5f\u7ea2\u6811\u6797\u9020\u6797\u9879\u76ee"  # a project's name in Chinese


def apply(s: RegistryState, seq: int, type: str, data: dict[str, Any]) -> None:
    s.apply(Entry(seq, b"\x00" * 32, TIME, type, "system:test", data))


def registry_state(**org_extra: Any) -> RegistryState:
    s = RegistryState()
    for pk, roles in ((1, ["operator"]), (2, ["registry"]), (3, ["developer"])):
        org = {"id": pk, "handle": f"o{pk}", "name": f"Org {pk}", "roles": roles}
        apply(s, pk, "org.register", {"organization": {**org, **(org_extra if pk == 3 else {})}})
    meth = {"id": 1, "code": "M", "name": "M", "standard": "S", "ecosystems": []}
    apply(s, 4, "methodology.register", {"methodology": meth})
    return s


def test_an_entry_without_a_chinese_name_replays_as_before():
    s = registry_state()
    apply(s, 5, "project.register", {"project": project(1)})
    assert "name_zh" not in s.projects[1] and "name_zh" not in s.organizations[3]


def test_a_chinese_name_given_at_registration_is_in_the_replayed_tables():
    s = registry_state(name_zh="\u6e5b\u6c5f\u516c\u53f8")
    apply(s, 5, "project.register", {"project": {**project(1), "name_zh": ZH}})
    assert s.organizations[3]["name_zh"] == "\u6e5b\u6c5f\u516c\u53f8"
    assert s.projects[1]["name_zh"] == ZH


def test_a_project_gains_changes_and_loses_its_chinese_name_by_update():
    s = registry_state()
    apply(s, 5, "project.register", {"project": project(1)})
    apply(s, 6, "project.update", {"project": 1, "changes": {"name_zh": ZH}})
    assert s.projects[1]["name_zh"] == ZH
    apply(s, 7, "project.update", {"project": 1, "changes": {"name_zh": ""}})
    assert "name_zh" not in s.projects[1]  # as the registry's record of a row without one


@pytest.mark.parametrize("bad", ["", 7, None])
def test_an_empty_or_non_text_chinese_name_is_refused(bad):
    s = registry_state()
    with pytest.raises(ReplayError, match="name_zh"):
        apply(s, 5, "project.register", {"project": {**project(1), "name_zh": bad}})
    if bad != "":
        apply(s, 5, "project.register", {"project": project(1)})
        with pytest.raises(ReplayError, match="name_zh"):
            apply(s, 6, "project.update", {"project": 1, "changes": {"name_zh": bad}})
