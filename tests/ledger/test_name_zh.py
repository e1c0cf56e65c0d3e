"""``name_zh`` through the services: on the ledger when given, absent from the entry when not
(so entries written before the field replay identically), changed by ``project_update``, replayed
and compared by ``ledger_verify`` (and by the auditor's package, whose replay it runs), shown on
Chinese pages and answered by the API."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation

from ledger import records, services
from ledger.apis.registry import MethodologyOutputSerializer, ProjectOutputSerializer
from ledger.core.entry import decode_entry
from ledger.models import LedgerEntry, Organization, Project, Role
from ledger.signing import trusted_verifiers
from ledger.verify import VerificationError, verify_ledger
from portal.names import local_name
from tests import factories
from tests.factories import OPERATOR

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("verifier_path")]

ZH = "\u6e5b\u6c5f\u7ea2\u6811\u6797\u9020\u6797\u9879\u76ee"
ORG_ZH = "\u6e5b\u6c5f\u7ea2\u6811\u6797\u4fee\u590d\u6709\u9650\u516c\u53f8"


@pytest.fixture
def keys(settings, tmp_path):
    settings.LEDGER_SIGNING_KEY_FILE = tmp_path / "keys" / "signing.key"
    settings.LEDGER_VERIFIER_KEYS_FILE = tmp_path / "keys" / "verifier-keys.txt"
    return tmp_path


def data_of(type: str) -> dict:
    entry = LedgerEntry.objects.filter(type=type).order_by("-seq").first()
    return decode_entry(bytes(entry.body)).data


def verify() -> None:
    services.ledger_checkpoint_issue()
    verify_ledger(verifiers=trusted_verifiers())


def test_a_chinese_name_is_on_the_ledger_only_when_given_and_replays(keys):
    plain = factories.organization(Role.DEVELOPER)
    assert "name_zh" not in data_of("org.register")["organization"]  # as before the field
    dev = services.organization_register(
        actor=OPERATOR, handle="zj-dev", name="Zhanjiang Dev", name_zh=ORG_ZH, roles=["developer"]
    )
    assert data_of("org.register")["organization"]["name_zh"] == ORG_ZH
    reg = factories.organization(Role.REGISTRY)
    p = factories.project(reg, dev, name_zh=ZH)
    assert data_of("project.register")["project"]["name_zh"] == ZH
    q = factories.project(reg, plain)
    assert "name_zh" not in data_of("project.register")["project"]
    assert records.project_record(q) == data_of("project.register")["project"]
    verify()

    services.project_update(actor=OPERATOR, project=q.pk, name_zh=ZH)
    assert data_of("project.update")["changes"] == {"name_zh": ZH}
    services.project_update(actor=OPERATOR, project=p.pk, name_zh="")
    assert data_of("project.update")["changes"] == {"name_zh": ""}
    assert Project.objects.get(pk=p.pk).name_zh == ""
    verify()  # the replay's tables are the live ones, Chinese names and all


def test_verification_names_a_chinese_name_changed_in_the_table(keys):
    dev = factories.organization(Role.DEVELOPER)
    factories.project(factories.organization(Role.REGISTRY), dev, name_zh=ZH)
    verify()
    Organization.objects.filter(pk=dev.pk).update(name_zh="\u5047\u540d")  # an insider's edit
    with pytest.raises(VerificationError, match="organization"):
        verify()


def test_pages_and_the_api_give_the_chinese_name_with_the_english_as_fallback(client: Client):
    dev = services.organization_register(
        actor=OPERATOR, handle="zj-dev", name="Zhanjiang Dev", name_zh=ORG_ZH, roles=["developer"]
    )
    p = factories.project(factories.organization(Role.REGISTRY), dev, name_zh=ZH)
    english = client.get(f"/registry/projects/{p.code}/").content.decode()
    assert p.name in english and ZH not in english
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    chinese = client.get(f"/registry/projects/{p.code}/").content.decode()
    assert f"<h1>{ZH}</h1>" in chinese and ORG_ZH in chinese
    listed = client.get("/registry/projects/").content.decode()
    assert ZH in listed
    body = ProjectOutputSerializer(p).data  # GET /api/v1/projects/{id}
    assert body["name_zh"] == ZH and body["name"] == p.name
    assert MethodologyOutputSerializer(p.methodology).data["name_zh"] == ""
    with translation.override("zh-hans"):
        assert local_name(p.methodology) == p.methodology.name  # none given: the English one
