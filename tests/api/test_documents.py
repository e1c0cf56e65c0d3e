"""A project's documents through the API: its registry attaches them by multipart upload (scope
issue, Idempotency-Key as every write), anyone lists and downloads them with no key; a
download whose stored bytes no longer match the ledger's hash is refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ledger import demo, documents
from ledger.models import LedgerEntry, ProjectDocument, Role
from tests import factories

pytestmark = pytest.mark.django_db

PDF = demo.pdf(["Verification report", "Zhanjiang mangroves 2019-2020"])


@pytest.fixture(autouse=True)
def store(settings, tmp_path):
    settings.DOCUMENTS_DIR = tmp_path / "documents"
    return settings.DOCUMENTS_DIR


def form(content: bytes = PDF, content_type: str = "application/pdf", **fields):
    return {
        "kind": "verification_report",
        "title": "Verification report 2019\u20132020 (CEC)",
        "file": SimpleUploadedFile("report.pdf", content, content_type),
        **fields,
    }


def url(world) -> str:
    return f"/api/v1/projects/{world.project.pk}/documents"


def test_a_registry_attaches_a_report_and_anyone_downloads_it(world, client_for):
    registry = client_for(world.registry, "issue")
    r = registry.post(url(world), form(), format="multipart")
    assert r.status_code == 201, r.content
    doc = r.json()
    digest = hashlib.sha256(PDF).hexdigest()
    assert doc["sha256"] == digest and doc["size"] == len(PDF)
    assert doc["media_type"] == "application/pdf" and doc["kind"] == "verification_report"
    assert doc["download_url"] == f"/api/v1/documents/{doc['id']}/content"
    assert LedgerEntry.objects.get(seq=doc["entry_seq"]).type == "document.attach"

    anyone = APIClient()
    listed = anyone.get(url(world))
    assert listed.status_code == 200
    assert [d["sha256"] for d in listed.json()["results"]] == [digest]
    assert anyone.get(f"/api/v1/documents/{doc['id']}").json() == doc

    got = anyone.get(doc["download_url"], HTTP_ACCEPT="application/pdf")
    assert got.status_code == 200
    assert got.content == PDF
    assert got["Content-Type"] == "application/pdf"
    assert got["Content-Disposition"] == (
        "attachment; filename*=utf-8''Verification%20report%202019%E2%80%932020%20%28CEC%29.pdf"
    )
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["ETag"] == f'"{digest}"'
    assert got["Repr-Digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(PDF).digest()).decode() + ":"
    )
    assert "sandbox" in got["Content-Security-Policy"]
    again = anyone.get(doc["download_url"], HTTP_IF_NONE_MATCH=f'"{digest}"')
    assert again.status_code == 304 and again.content == b""


def test_text_is_served_as_utf8_text(world, client_for):
    text = "Monitoring report\n红树林 plots 1-7\n".encode()
    r = client_for(world.registry, "issue").post(
        url(world), form(text, "text/plain", kind="monitoring_report"), format="multipart"
    )
    assert r.status_code == 201, r.content
    got = APIClient().get(r.json()["download_url"])
    assert got["Content-Type"] == "text/plain; charset=utf-8"
    assert got.content == text


def test_the_idempotency_key_applies_an_upload_once_and_knows_another_file(world, client_for):
    registry = client_for(world.registry, "issue")
    key = {"HTTP_IDEMPOTENCY_KEY": "attach-1"}
    first = registry.post(url(world), form(), format="multipart", **key)
    entries = LedgerEntry.objects.count()
    again = registry.post(url(world), form(), format="multipart", **key)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert LedgerEntry.objects.count() == entries
    # The same key, the same file name, other bytes: another request.
    other = registry.post(url(world), form(demo.pdf(["Another report"])), format="multipart", **key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_the_same_file_again_without_a_key_is_the_same_document(world, client_for):
    registry = client_for(world.registry, "issue")
    first = registry.post(url(world), form(), format="multipart")
    again = registry.post(url(world), form(), format="multipart")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    conflict = registry.post(url(world), form(title="Renamed"), format="multipart")
    assert conflict.status_code == 409 and conflict.json()["code"] == "document_exists"


@pytest.mark.parametrize(
    ("upload", "status", "code"),
    [
        (form(b"", "text/plain"), 400, "document_empty"),
        (form(b"PK\x03\x04zip", "application/zip"), 415, "document_media_type"),
        (form(b"not a pdf", "application/pdf"), 422, "document_content_mismatch"),
        (form(kind="press_release"), 400, "invalid"),
        ({"kind": "other", "title": "No file"}, 400, "invalid"),
    ],
)
def test_bad_uploads_get_stable_codes_and_change_nothing(
    world, client_for, store, upload, status, code
):
    entries = LedgerEntry.objects.count()
    r = client_for(world.registry, "issue").post(url(world), upload, format="multipart")
    assert (r.status_code, r.json()["code"]) == (status, code), r.content
    assert LedgerEntry.objects.count() == entries
    assert not ProjectDocument.objects.exists()
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))


def test_a_media_type_field_overrides_the_parts_content_type(world, client_for):
    r = client_for(world.registry, "issue").post(
        url(world),
        form(content_type="application/octet-stream", media_type="application/pdf"),
        format="multipart",
    )
    assert r.status_code == 201, r.content


def test_a_file_over_the_limit_is_refused_while_it_is_read(world, client_for, monkeypatch):
    monkeypatch.setattr(documents, "MAX_BYTES", 100_000)
    # Django reads the part in 64 KiB chunks: the handler stops at the second.
    big = b"%PDF-1.4\n" + b"0" * 200_000
    r = client_for(world.registry, "issue").post(url(world), form(big), format="multipart")
    assert (r.status_code, r.json()["code"]) == (413, "document_too_large")
    assert r.json()["detail"]["limit_bytes"] == 100_000
    assert not ProjectDocument.objects.exists()


def test_a_body_declared_larger_than_any_document_is_refused_before_it_is_read(world, client_for):
    r = client_for(world.registry, "issue").post(
        url(world),
        b"--x--",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(30 * 1024 * 1024),
    )
    assert (r.status_code, r.json()["code"]) == (413, "document_too_large")


def test_only_the_projects_registry_attaches(world, client_for):
    for org in (world.developer, factories.organization(Role.REGISTRY)):
        r = client_for(org, "issue").post(url(world), form(), format="multipart")
        assert r.status_code == 404, r.content
    assert client_for(world.registry, "read").post(url(world), form()).status_code == 403
    assert APIClient().post(url(world), form(), format="multipart").status_code == 401
    assert not ProjectDocument.objects.exists()


def test_unknown_projects_and_documents_are_404(world):
    anyone = APIClient()
    assert anyone.get("/api/v1/projects/999999/documents").status_code == 404
    for path in ("/api/v1/documents/999999", "/api/v1/documents/abc/content"):
        r = anyone.get(path)
        assert (r.status_code, r.json()["code"]) == (404, "not_found")


# ---- the attack: an insider swaps the stored file --------------------------------------------


def test_a_swapped_file_is_refused_at_download_with_a_clear_error(world, client_for, caplog):
    r = client_for(world.registry, "issue").post(url(world), form(), format="multipart")
    doc = r.json()
    target = documents.path_for(doc["sha256"])
    forged = demo.pdf(["Verification report", "nothing to see: all verified"])
    target.write_bytes(forged)
    got = APIClient().get(doc["download_url"])
    assert got.status_code == 500
    body = got.json()
    assert body["code"] == "document_integrity"
    assert "does not match the SHA-256 on the ledger" in body["message"]
    assert body["detail"] == {
        "sha256": doc["sha256"],
        "stored_sha256": hashlib.sha256(forged).hexdigest(),
    }
    assert forged not in got.content
    assert "hashes to" in caplog.text  # the operator is told


def test_a_lost_file_is_refused_at_download(world, client_for):
    doc = client_for(world.registry, "issue").post(url(world), form(), format="multipart").json()
    documents.path_for(doc["sha256"]).unlink()
    got = APIClient().get(doc["download_url"])
    assert (got.status_code, got.json()["code"]) == (500, "document_missing")
