"""The auditor pages' take-away: a signed report of each verification run (portal/reports.py)
and the export bundle as a download, checked the way an auditor would, with the audit package
and the published report key, never with the server's own code."""

from __future__ import annotations

import base64
import io
import tarfile

import pytest
from bluecarbon_audit import bundle
from bluecarbon_audit.note import NoteError, Verifier, open_note
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.sources import open_source
from bluecarbon_audit.verify import VerifyOptions, verify

from ledger import services
from ledger.models import Checkpoint, Role
from ledger.signing import trusted_verifiers
from portal import services as portal_services
from portal.models import VerificationRun
from tests import factories
from tests.auctions.conftest import Market
from tests.ledger.test_tamper import bypass_triggers, restore_triggers, set_node
from tests.portal.test_pages import user_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(db) -> Market:
    return Market()


@pytest.fixture
def auditor(market):
    return user_for(factories.organization(Role.AUDITOR), "auditor")


@pytest.fixture
def bidder(market):
    return user_for(market.bidders[0], "bidder")


def run_verification(client) -> VerificationRun:
    client.post("/audit/verification/start")
    run = VerificationRun.objects.order_by("-pk").first()
    portal_services.verification_run(run=run.pk)  # what the worker's task does
    run.refresh_from_db()
    return run


def report_facts(client, run: VerificationRun) -> dict[str, str]:
    """The report as an auditor reads it: downloaded, its signature checked with the keys
    published for reports (and with nothing else)."""
    keys = client.get("/audit/report-verifier-keys.txt").content.decode().split()
    note = client.get(f"/audit/verification/{run.pk}/report.txt").content.decode()
    text = open_note(note, [Verifier.from_string(k) for k in keys]).text
    lines = text.splitlines()
    assert lines[0] == "bluecarbon verification report v1"
    return dict(line.split(" ", 1) for line in lines[1:])


def test_a_verified_run_signs_what_it_verified_up_to_which_checkpoint(market, auditor):
    services.ledger_checkpoint_issue()
    latest = Checkpoint.objects.order_by("-size").first()
    run = run_verification(auditor)
    assert run.status == "ok"
    facts = report_facts(auditor, run)
    assert facts["result"] == "verified"
    assert facts["run"] == str(run.pk) and int(facts["entries"]) == run.entries > 0
    assert facts["checkpoint"] == f"{latest.size} {base64.b64encode(bytes(latest.root)).decode()}"
    page = auditor.get(f"/audit/verification/{run.pk}/").content.decode()
    assert 'id="signed-report"' in page and "verification-reports" in page
    listing = auditor.get("/audit/verification/").content.decode()
    assert f"/audit/verification/{run.pk}/report.txt" in listing


def test_a_failed_run_signs_its_failure_and_a_changed_report_does_not_verify(market, auditor):
    services.ledger_checkpoint_issue()
    bypass_triggers()
    set_node(1, 0, b"\x42" * 32)
    restore_triggers()
    run = run_verification(auditor)
    assert run.status == "failed"
    facts = report_facts(auditor, run)
    assert facts["result"] == "failed"
    assert "stored Merkle node at level 1, index 0" in facts["failure"]

    keys = auditor.get("/audit/report-verifier-keys.txt").content.decode().split()
    forged = run.report.replace("result failed", "result verified")
    with pytest.raises(NoteError):
        open_note(forged, [Verifier.from_string(k) for k in keys])
    # Nor does a report verify with the ledger's checkpoint keys: a key of its own.
    with pytest.raises(NoteError):
        open_note(run.report, trusted_verifiers())


def test_the_export_bundle_downloads_and_the_audit_package_verifies_it(
    market, auditor, bidder, client, tmp_path
):
    assert auditor.get("/audit/export.tar").status_code == 404  # no checkpoint yet
    services.ledger_checkpoint_issue()
    assert client.get("/audit/export.tar").status_code in (302, 403)  # anonymous
    assert bidder.get("/audit/export.tar").status_code in (302, 403)
    r = auditor.get("/audit/export.tar")
    assert r.status_code == 200 and r["Content-Type"] == "application/x-tar"
    assert r.streaming and "attachment" in r["Content-Disposition"]
    data = b"".join(r.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert f"{bundle.TOP}/{bundle.MANIFEST}" in names
    path = tmp_path / "export.tar"
    path.write_bytes(data)
    keys = auditor.get("/audit/verifier-keys.txt").content.decode().split()
    policy = Policy.from_flags(keys, [], None)
    report = verify(open_source(str(path)), VerifyOptions(policy=policy, workers=0))
    assert report.entries == Checkpoint.objects.order_by("-size").first().size > 0


def test_reports_signed_before_a_rotation_keep_verifying(market, auditor):
    from django.core.management import call_command

    services.ledger_checkpoint_issue()
    before = run_verification(auditor)
    call_command("report_key_rotate")
    after = run_verification(auditor)
    assert report_facts(auditor, before)["result"] == report_facts(auditor, after)["result"]
    signer_lines = [r.report.splitlines()[-1].split()[2][:8] for r in (before, after)]
    assert signer_lines[0] != signer_lines[1]  # two keys signed them
