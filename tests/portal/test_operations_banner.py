"""The operations banner: a red banner on the portal's pages for operators and auditors and on
every admin page, while the checkpoint signer has refused, a witness has refused, or no worker
has been heard from; never for anonymous visitors or bidders. In both languages. Signer alarms
are acknowledged by an operator in the admin, which is otherwise read-only for them."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from ledger.models import Role, SignerAlarm, WitnessRefusal, WorkerHeartbeat
from tests import factories
from tests.ledger.test_health import (
    healthy,  # noqa: F401 (a fixture)
    heartbeats_on_every_queue,
    misconfigured_witness,  # noqa: F401 (a fixture)
    signer_refuses,
    witness_refuses,
)
from tests.portal.test_pages import user_for

BANNER = 'id="operations-alerts"'


@pytest.fixture
def people(healthy):  # noqa: F811
    operator_org = factories.organization(Role.OPERATOR)
    operator = user_for(operator_org, "operator", is_staff=True)
    operator_user = operator_org.members.get().user
    for codename in ("view_signeralarm", "view_witnessrefusal", "view_workerheartbeat"):
        operator_user.user_permissions.add(Permission.objects.get(codename=codename))
    return {
        "operator": operator,
        "auditor": user_for(factories.organization(Role.AUDITOR), "auditor"),
        "bidder": user_for(factories.organization(Role.BIDDER), "bidder"),
        "anonymous": Client(),
    }


def make_unhealthy(kind: str, request, settings) -> None:
    if kind == "signer":
        signer_refuses(settings)
    elif kind == "witness":
        witness_refuses(request.getfixturevalue("misconfigured_witness"))
    elif kind == "worker":
        settings.HEALTH_WORKER_SILENCE_SECONDS = 0.0
        time.sleep(0.01)
    else:
        raise AssertionError(kind)


def page(client: Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return r.content.decode()


def test_no_banner_while_all_is_well(people):
    for who in ("operator", "auditor"):
        assert BANNER not in page(people[who], "/")
    assert BANNER not in page(people["operator"], "/admin/")


@pytest.mark.parametrize("kind", ["signer", "witness", "worker"])
def test_operators_and_auditors_see_the_banner_and_no_one_else(people, kind, request, settings):
    make_unhealthy(kind, request, settings)
    for path in ("/", "/registry/projects/", "/audit/ledger/"):
        html = page(people["auditor"], path)
        assert BANNER in html and f'class="ops-alert-{kind}"' in html, path
    html = page(people["operator"], "/")
    assert BANNER in html and f'class="ops-alert-{kind}"' in html
    for path in ("/admin/", "/admin/ledger/signeralarm/", "/admin/ledger/workerheartbeat/"):
        html = page(people["operator"], path)
        assert BANNER in html and f'class="ops-alert-{kind}"' in html, path
    for path in ("/", "/registry/projects/", "/auctions/"):
        assert BANNER not in page(people["anonymous"], path)
        assert BANNER not in page(people["bidder"], path)
    assert BANNER not in page(people["bidder"], "/account/")
    # The admin signs in through the portal's sign-in (two-factor sign-in, portal/admin_site.py).
    assert people["anonymous"].get("/admin/login/")["Location"].startswith("/account/login/")
    assert BANNER not in page(people["anonymous"], "/account/login/?next=/admin/")


def test_the_banner_names_what_happened(people, request, settings):
    settings.WORKER_QUEUES = [*settings.WORKER_QUEUES, "witness"]
    make_unhealthy("signer", request, settings)
    make_unhealthy("witness", request, settings)
    html = page(people["auditor"], "/")
    assert "The checkpoint signer refused to sign" in html
    assert "Witness w1 refused to cosign the checkpoint of size" in html
    assert "No worker has ever been heard from on the queue witness" in html
    assert "/admin/" not in html  # auditors are not sent to the admin
    html = page(people["operator"], "/")
    assert "/admin/ledger/signeralarm/?acknowledged_at__isempty=1" in html
    assert "/admin/ledger/witnessrefusal/" in html

    settings.HEALTH_WORKER_SILENCE_SECONDS = 0.0
    # Heard from once, long enough ago (one row: a worker has one heartbeat row per queue).
    WorkerHeartbeat.objects.filter(queue=settings.WORKER_QUEUES[0]).update(queue="witness")
    heartbeats_on_every_queue()
    time.sleep(0.01)
    html = page(people["auditor"], "/")
    assert "No worker has been heard from on the queue witness for 0 seconds" in html


def test_the_banner_is_in_chinese_for_chinese_readers(people, request, settings):
    settings.WORKER_QUEUES = [*settings.WORKER_QUEUES, "witness"]
    make_unhealthy("signer", request, settings)
    make_unhealthy("witness", request, settings)
    auditor = people["auditor"]
    auditor.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    html = page(auditor, "/")
    assert "运行告警" in html
    assert "检查点签名器拒绝签名" in html
    assert "见证人 w1 拒绝联署大小为" in html
    assert "队列 witness 上从未收到任何后台工作进程的心跳" in html
    assert "The checkpoint signer refused" not in html


# ---- acknowledging in the admin ------------------------------------------------------------


def acknowledge(client: Client, alarm: SignerAlarm):
    return client.post(
        "/admin/ledger/signeralarm/",
        {"action": "acknowledge_alarms", "_selected_action": [alarm.pk]},
        follow=True,
    )


def test_an_operator_acknowledges_a_signer_alarm_and_the_banner_goes(people, settings):
    signer_refuses(settings)
    alarm = SignerAlarm.objects.get()
    operator = people["operator"]
    html = page(operator, "/admin/ledger/signeralarm/")
    assert "acknowledge_alarms" in html and alarm.message[:40] in html

    r = acknowledge(operator, alarm)
    assert "1 alarm(s) acknowledged." in r.content.decode()
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is not None
    assert BANNER not in page(operator, "/")
    assert BANNER not in page(people["auditor"], "/")

    signer_refuses(settings)  # refused again: a new alarm, the banner is back
    assert BANNER in page(people["auditor"], "/")


def test_only_an_operator_may_acknowledge(people, settings):
    signer_refuses(settings)
    alarm = SignerAlarm.objects.get()
    staff = user_for(factories.organization(Role.REGISTRY), "registrar", is_staff=True)
    from django.contrib.auth import get_user_model

    get_user_model().objects.get(username="registrar").user_permissions.add(
        Permission.objects.get(codename="view_signeralarm")
    )
    html = page(staff, "/admin/ledger/signeralarm/")
    assert BANNER in html  # staff see the banner
    assert "acknowledge_alarms" not in html  # but are not offered the action
    acknowledge(staff, alarm)
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None


def test_the_admin_is_read_only_for_alarms_refusals_and_heartbeats(
    people,
    request,
    settings,
    misconfigured_witness,  # noqa: F811
):
    signer_refuses(settings)
    witness_refuses(misconfigured_witness)
    operator = people["operator"]
    alarm, refusal = SignerAlarm.objects.get(), WitnessRefusal.objects.get()
    heartbeat = WorkerHeartbeat.objects.first()
    for model, pk in (
        ("signeralarm", alarm.pk),
        ("witnessrefusal", refusal.pk),
        ("workerheartbeat", heartbeat.pk),
    ):
        assert operator.get(f"/admin/ledger/{model}/").status_code == 200
        assert operator.get(f"/admin/ledger/{model}/add/").status_code == 403
        assert operator.get(f"/admin/ledger/{model}/{pk}/delete/").status_code == 403
        r = operator.post(f"/admin/ledger/{model}/{pk}/change/", {"message": "edited"})
        assert r.status_code == 403
    alarm.refresh_from_db()
    assert alarm.message != "edited" and alarm.acknowledged_at is None
