"""Projects' documents in the admin: listed, and attached by an add form that calls
``services.project_document_attach`` (the one way to attach one: the file stored by its hash, the
row and its ledger entry together). Rows are never changed or deleted here.
Imported at the end of ``ledger/admin.py``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from bluecarbon.rows import adopt

from . import documents, services
from .actors import Actor
from .exceptions import DomainError
from .models import DocumentKind, Project, ProjectDocument


class DocumentAttachForm(forms.ModelForm):
    """What the add form asks; the service checks the file and writes row and entry."""

    file = forms.FileField(
        help_text=f"PDF, plain text (UTF-8), PNG or JPEG; at most {documents.MAX_BYTES:,} bytes."
    )
    media_type = forms.CharField(
        required=False,
        max_length=100,
        help_text="Leave empty to take the type the browser sent with the file.",
    )
    kind = forms.ChoiceField(choices=DocumentKind.choices)

    class Meta:
        model = ProjectDocument
        fields = ("project", "kind", "title")

    actor: Actor | None = None  # set by the admin for the request
    attached: ProjectDocument | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if self.errors or upload is None or self.actor is None:
            return data
        if upload.size > documents.MAX_BYTES:
            raise forms.ValidationError(documents.too_large(upload.size).message)
        try:
            # The service is the check: it refuses before it writes anything, and the admin's
            # add view runs this in its transaction with the rest of the request.
            self.attached = services.project_document_attach(
                actor=self.actor,
                project=data["project"].pk,
                kind=data["kind"],
                title=data["title"],
                content=upload.read(),
                media_type=data.get("media_type") or upload.content_type or "",
            )
        except DomainError as exc:
            raise forms.ValidationError(f"{exc.code}: {exc.message}") from None
        return data


class ProjectDocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "project", "kind", "media_type", "size", "short_sha256", "entry")
    list_filter = ("kind", "media_type")
    list_select_related = ("project",)
    search_fields = ("title", "sha256", "project__code")
    ordering = ("-entry_seq",)
    form = DocumentAttachForm
    _shown = (
        "project",
        "kind",
        "title",
        "media_type",
        "size",
        "sha256",
        "attached_at",
        "entry_seq",
        "download",
    )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: ProjectDocument | None = None) -> Any:
        return ("project", "kind", "title", "file", "media_type") if obj is None else self._shown

    def get_readonly_fields(self, request: HttpRequest, obj: ProjectDocument | None = None) -> Any:
        return () if obj is None else self._shown

    def get_form(
        self,
        request: HttpRequest,
        obj: ProjectDocument | None = None,
        change: bool = False,
        **kw: Any,
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        if obj is None:
            actor = Actor.for_user(request.user)
            form = type("DocumentAttachFormFor", (form,), {"actor": actor})
        return form

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kw: Any) -> Any:
        if db_field.name == "project":
            kw["queryset"] = Project.objects.order_by("code")
        return super().formfield_for_foreignkey(db_field, request, **kw)

    def save_model(
        self, request: HttpRequest, obj: ProjectDocument, form: Any, change: bool
    ) -> None:
        # Made by the service in the form's clean(); the admin goes on with ``obj``.
        assert form.attached is not None
        adopt(obj, form.attached)

    @admin.display(description="SHA-256")
    def short_sha256(self, d: ProjectDocument) -> str:
        return f"{d.sha256[:12]}…"

    @admin.display(description="ledger entry")
    def entry(self, d: ProjectDocument) -> str:
        return format_html(
            '<a href="{}">#{}</a>', reverse("portal:entry", args=[d.entry_seq]), d.entry_seq
        )

    @admin.display(description="download")
    def download(self, d: ProjectDocument) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("api:document-content", args=[d.pk]), "download"
        )


admin.site.register(ProjectDocument, ProjectDocumentAdmin)
