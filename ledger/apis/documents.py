"""A project's documents under ``/api/v1/``: its registry attaches them (multipart upload,
scope ``issue``); anyone lists and downloads them, with no key.

A download is re-hashed before it is served: bytes whose SHA-256 is not the one on the ledger
are refused (``500 document_integrity``), never sent. The hash goes out as the ``ETag`` and as
an RFC 9530 ``Repr-Digest``, so a client can check what it got without trusting the server."""

from __future__ import annotations

import base64
from typing import Any

from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import path, reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import parsers, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .. import documents, services
from ..exceptions import NotFound
from ..models import DocumentKind, Project, ProjectDocument
from .base import ID_PARAM, BaseApi, PageSerializer, PublicApi, page, page_of, path_id, query
from .base import on_one_path as _on_one_path
from .base import responses as _responses

# What a multipart form adds around the file (boundaries, part headers, the other fields): a
# body larger than the largest document by more than this is refused before it is read.
_FORM_OVERHEAD = 64 * 1024


class DocumentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    kind = serializers.ChoiceField(choices=DocumentKind.choices)
    title = serializers.CharField()
    media_type = serializers.CharField()
    size = serializers.IntegerField(help_text="bytes")
    sha256 = serializers.CharField(help_text="of the file's bytes, as its ledger entry says")
    attached_at = serializers.DateTimeField(help_text="its ledger entry's time")
    entry_seq = serializers.IntegerField(help_text="its document.attach entry")
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, d: ProjectDocument) -> str:
        return reverse("api:document-content", kwargs={"pk": d.pk})


def _project(pk: str) -> Project:
    found = Project.objects.filter(pk=path_id(pk, "project")).first()
    if found is None:
        raise NotFound(f"project {pk} not found")
    return found


class _BoundedUpload(TemporaryFileUploadHandler):
    """Stops reading a file part as soon as it is larger than a document may be (Django would
    otherwise write any size to a temporary file first)."""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > documents.MAX_BYTES:
            raise documents.too_large()
        return super().receive_data_chunk(raw_data, start)


class ProjectDocumentListApi(PublicApi):
    @extend_schema(
        operation_id="projects_documents_list",
        tags=["registry"],
        parameters=[*ID_PARAM, PageSerializer],
        responses=_responses({200: page_of("DocumentPage", DocumentOutputSerializer)}, 400, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """A project's documents, oldest first (public: no key needed)."""
        p = _project(pk)
        params = query(PageSerializer, request)
        rows: QuerySet[ProjectDocument] = ProjectDocument.objects.filter(project=p)
        return page(rows, params, DocumentOutputSerializer)


class ProjectDocumentAttachApi(BaseApi):
    required_scope = "issue"
    parser_classes = [parsers.MultiPartParser]

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=DocumentKind.choices)
        title = serializers.CharField(max_length=300)
        file = serializers.FileField(
            allow_empty_file=True,  # the service refuses it with its own code
            help_text=f"at most {documents.MAX_BYTES:,} bytes: PDF, plain text (UTF-8), PNG, "
            "JPEG; its bytes must be the type its part's Content-Type claims",
        )
        media_type = serializers.CharField(
            max_length=100,
            required=False,
            help_text="the file's type, if its part's Content-Type does not say it",
        )

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Before anything reads the body (the session's CSRF check reads the form).
        request.upload_handlers = [_BoundedUpload(request)]
        return super().initialize_request(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > documents.MAX_BYTES + _FORM_OVERHEAD:
            raise documents.too_large()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="projects_documents_attach",
        tags=["registry"],
        parameters=ID_PARAM,
        request={"multipart/form-data": InputSerializer},
        responses=_responses({201: DocumentOutputSerializer}, 400, 404, 409, 413, 415, 422),
    )
    def post(self, request: Request, pk: str) -> Response:
        """Attach a document to a project of the caller's registry (a monitoring, verification
        or validation report): the file is stored by its SHA-256, and a ``document.attach``
        entry records the hash. The same file with the same kind and title again is answered
        with the document it made (200), and no new entry."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor(request)
        project = path_id(pk, "project")
        upload = data.validated_data["file"]
        fields = {
            "kind": data.validated_data["kind"],
            "title": data.validated_data["title"],
            "media_type": data.validated_data.get("media_type") or upload.content_type or "",
        }

        def run() -> Response:
            upload.seek(0)
            before = ProjectDocument.objects.count()
            doc = services.project_document_attach(
                actor=actor, project=project, content=upload.read(), **fields
            )
            made = ProjectDocument.objects.count() > before
            return Response(DocumentOutputSerializer(doc).data, status=201 if made else 200)

        return self.idempotent(request, run)


class DocumentRetrieveApi(PublicApi):
    @extend_schema(
        operation_id="documents_retrieve",
        tags=["registry"],
        parameters=ID_PARAM,
        responses=_responses({200: DocumentOutputSerializer}, 404),
    )
    def get(self, request: Request, pk: str) -> Response:
        """One document's description (public)."""
        return Response(DocumentOutputSerializer(_document(pk)).data)


def _document(pk: str) -> ProjectDocument:
    found = ProjectDocument.objects.filter(pk=path_id(pk, "document")).first()
    if found is None:
        raise NotFound(f"document {pk} not found")
    return found


class DocumentContentApi(PublicApi):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The file's own type is the answer: an Accept of application/pdf is no 406 here.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="documents_content",
        tags=["registry"],
        parameters=ID_PARAM,
        responses={
            **{
                (200, media): OpenApiResponse(
                    OpenApiTypes.BINARY,
                    description="the file; ETag and Repr-Digest carry its SHA-256",
                )
                for media in ("application/pdf", "text/plain", "image/png", "image/jpeg")
            },
            304: OpenApiResponse(description="If-None-Match named its ETag"),
            **_responses({}, 404, 500),
        },
    )
    def get(self, request: Request, pk: str) -> HttpResponseBase:
        """Download a document (public). Its bytes are re-hashed first: a file that does not
        match the SHA-256 on the ledger is refused with ``500 document_integrity``."""
        d = _document(pk)
        etag = f'"{d.sha256}"'
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            answer = HttpResponse(status=304)
            answer["ETag"] = etag
            return answer
        content = documents.read_verified(d.sha256, what=f"document {d.pk}")
        media = d.media_type + ("; charset=utf-8" if d.media_type == "text/plain" else "")
        answer = HttpResponse(content, content_type=media)
        disposition = content_disposition_header(
            True, documents.filename(d.title, d.media_type, d.sha256)
        )
        assert disposition is not None  # None only for an inline answer without a name
        answer["Content-Disposition"] = disposition
        answer["X-Content-Type-Options"] = "nosniff"
        # Should a browser render it anyway, it runs nothing and loads nothing.
        answer["Content-Security-Policy"] = "default-src 'none'; sandbox"
        answer["ETag"] = etag
        digest = base64.b64encode(bytes.fromhex(d.sha256)).decode()
        answer["Repr-Digest"] = f"sha-256=:{digest}:"  # RFC 9530 §3
        # The id's bytes never change (the ledger fixes their hash).
        answer["Cache-Control"] = "public, max-age=31536000, immutable"
        return answer


ProjectDocumentsApi = _on_one_path(
    "ProjectDocumentsApi", ProjectDocumentListApi, ProjectDocumentAttachApi
)

urlpatterns = [
    path("projects/<str:pk>/documents", ProjectDocumentsApi.as_view(), name="project-documents"),
    path("documents/<str:pk>", DocumentRetrieveApi.as_view(), name="document"),
    path("documents/<str:pk>/content", DocumentContentApi.as_view(), name="document-content"),
]
