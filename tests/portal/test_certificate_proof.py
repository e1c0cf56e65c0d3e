"""The retirement certificate links its C2SP tlog-proof file, which verifies offline with the
audit package (docs/audit.md, step 3)."""

from __future__ import annotations

import pytest
from bluecarbon_audit.policy import Policy
from bluecarbon_audit.proof import TlogProof, proof_verify

from ledger import services
from ledger.models import Retirement
from ledger.signing import trusted_verifiers

pytestmark = pytest.mark.django_db


@pytest.fixture
def retirement(world):
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
    return Retirement.objects.get()


def test_the_certificate_links_a_proof_file_that_verifies(retirement, client):
    services.ledger_checkpoint_issue()
    page = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    link = f"/api/v1/ledger/entries/{retirement.entry_seq}/proof"
    assert f'href="{link}" download' in page
    assert f"bluecarbon-audit proof bluecarbon-ledger-{retirement.entry_seq}.tlog-proof" in page
    proof = TlogProof.parse(client.get(link).content.decode())
    keys = [v.to_string() for v in trusted_verifiers()]
    verified = proof_verify(proof, policy=Policy.from_flags(keys, [], None))
    assert verified.entry.data["retirement"]["certificate"] == retirement.certificate


def test_before_a_checkpoint_covers_it_there_is_no_link_yet(retirement, client):
    page = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    assert "/proof" not in page
    assert "No signed checkpoint covers this entry yet" in page


def test_the_link_is_translated(retirement, client):
    services.ledger_checkpoint_issue()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    page = client.get(f"/registry/certificates/{retirement.certificate}/").content.decode()
    assert "下载证明文件" in page and "证明文件" in page
