"""The certificate page verifies its proof file in the browser (WebCrypto: SHA-256, Ed25519),
in Debian's Chromium, and shows the failure when one byte of the entry is changed."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ledger import services
from ledger.models import LedgerEntry, Retirement
from ledger.signing import trusted_verifiers
from tests.browser import page_problems

pytestmark = [pytest.mark.browser]


@pytest.fixture
def retirement(site: str) -> Retirement:
    from tests.factories import World

    world = World()
    b = world.issue(100_000)
    services.credit_transfer(
        actor=world.dev,
        batch=b.pk,
        sender=world.dev_account.pk,
        recipient=world.buyer_account.pk,
        quantity=5_000,
    )
    services.credit_retire(
        actor=world.buy,
        batch=b.pk,
        account=world.buyer_account.pk,
        quantity=2_000,
        beneficiary="Ningbo Coastal Energy",
        purpose="Offsetting 2022 Scope 1 emissions",
        jurisdiction="CN-ZJ",
    )
    services.ledger_checkpoint_issue()
    return Retirement.objects.get()


def test_the_certificate_verifies_its_proof_in_the_browser(browser, site, retirement):
    context = browser.new_context(base_url=site, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/certificates/{retirement.certificate}/")
    status = page.locator("#proof-status[data-result]")
    status.wait_for()
    assert status.get_attribute("data-result") == "verified", status.text_content()
    assert status.text_content() == "Verified in this browser: the entry is in the signed log."
    key = trusted_verifiers()[0].to_string().split("+")
    details = page.locator("#proof-details").text_content()
    assert f"Signed by {key[0]}+{key[1]}" in details
    size = LedgerEntry.objects.count()
    assert f"Checkpoint of {size} entries of the log bluecarbon.localhost/ledger." in details

    # One byte of the entry changed on its way to the browser: the proof no longer holds.
    def tamper(route: Any) -> None:
        response = route.fetch()
        lines = response.text().split("\n")
        entry = base64.b64decode(lines[1][len("extra ") :])
        entry = entry.replace(b'"quantity":2000', b'"quantity":2001')
        lines[1] = "extra " + base64.b64encode(entry).decode()
        route.fulfill(response=response, body="\n".join(lines))

    page.route("**/proof", tamper)
    page.reload()
    status.wait_for()
    assert status.get_attribute("data-result") == "failed"
    assert status.text_content() == (
        "NOT verified: the inclusion proof does not lead from this entry to the checkpoint's root"
    )
    context.close()
    assert problems == []


def test_the_browser_checks_the_witnesses_of_the_published_policy(
    browser, site, retirement, settings, tmp_path
):
    from bluecarbon_audit.cosignature import Cosigner

    from ledger.models import Checkpoint, CheckpointCosignature

    w1, w2 = Cosigner.generate("witness.example/w1"), Cosigner.generate("witness.example/w2")
    policy = tmp_path / "policy"
    policy.write_text(
        f"witness w1 {w1.verifier().to_string()}\nwitness w2 {w2.verifier().to_string()}\n"
        "group both all w1 w2\nquorum both\n"
    )
    settings.LEDGER_WITNESS_POLICY_FILE = str(policy)
    checkpoint = Checkpoint.objects.order_by("-size").first()
    cosignature = w1.cosign(checkpoint.note, 1_800_000_000)
    CheckpointCosignature.objects.create(
        checkpoint=checkpoint, witness="w1", line=cosignature.to_line(), timestamp=1_800_000_000
    )
    context = browser.new_context(base_url=site, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = page_problems(page)
    page.goto(f"/registry/certificates/{retirement.certificate}/")
    page.locator("#proof-status[data-result]").wait_for()
    details = page.locator("#proof-details").text_content()
    assert "Cosigned by the witnesses w1: the published witness quorum is NOT met." in details
    CheckpointCosignature.objects.create(
        checkpoint=checkpoint,
        witness="w2",
        line=w2.cosign(checkpoint.note, 1_800_000_001).to_line(),
        timestamp=1_800_000_001,
    )
    page.reload()
    page.locator("#proof-status[data-result]").wait_for()
    details = page.locator("#proof-details").text_content()
    assert "Cosigned by the witnesses w1, w2: the published witness quorum is met." in details
    # A cosignature line that does not verify fails the whole proof.
    line = w2.cosign(checkpoint.note, 1_800_000_001).to_line()
    bad = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]
    CheckpointCosignature.objects.filter(witness="w2").update(line=bad)
    page.reload()
    status = page.locator("#proof-status[data-result]")
    status.wait_for()
    assert status.text_content() == "NOT verified: the cosignature of witness w2 does not verify"
    context.close()
    assert problems == []
