"""A registrar attaches a document to one of its registry's projects from the portal (issue 17:
monitoring, verification and validation reports), as the API's multipart attach and the
admin's add form do: through ``services.project_document_attach``, the one way to attach one
(the file stored by its SHA-256, the row and its ``document.attach`` entry together).

The page adds what a person needs: the project's registry (or an operator) only, the kinds in
the reader's language, a refusal said next to the field it is about, in the reader's language,
and nothing written on a refusal. The file's type is what its bytes are (a browser's claim for
a ``.txt`` or a ``.pdf`` varies); a file of no accepted type is refused."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from bluecarbon.contention import durably
from bluecarbon.errors import DomainError
from ledger import documents, services
from ledger.actors import Actor
from ledger.models import DocumentKind, Project

from . import selectors


class DocumentForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=())
    title = forms.CharField(label=gettext_lazy("Title"), max_length=300)
    file = forms.FileField(label=gettext_lazy("File"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The kinds' labels in the reader's language (the model's are English).
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = [(k, _(label)) for k, label in DocumentKind.choices]
        limit = filesizeformat(documents.MAX_BYTES)
        self.fields["file"].help_text = _(
            "PDF, plain text (UTF-8), PNG or JPEG; at most %(limit)s."
        ) % {"limit": limit}

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > documents.MAX_BYTES:
            raise forms.ValidationError(
                _("This file is %(size)s; a document may be at most %(limit)s.")
                % {
                    "size": filesizeformat(upload.size),
                    "limit": filesizeformat(documents.MAX_BYTES),
                }
            )
        return upload


def attach_error(exc: DomainError) -> tuple[str | None, str]:
    """A refusal of ``project_document_attach`` as the form says it: the field it is about and
    a sentence in the page's language."""
    if exc.code == "document_empty":
        return "file", _("This file is empty.")
    if exc.code == "document_too_large":
        return "file", _("A document may be at most %(limit)s.") % {
            "limit": filesizeformat(documents.MAX_BYTES)
        }
    if exc.code in ("document_media_type", "document_content_mismatch"):
        return "file", _("This file is not a PDF, plain text (UTF-8), PNG or JPEG file.")
    if exc.code == "document_exists":
        return "file", _(
            "This file is already attached to the project, under another title or kind."
        )
    field = next(iter(exc.detail or {}), None)
    return (field if field in DocumentForm.base_fields else None), _(
        "The registry refused the document (%(code)s)."
    ) % {"code": exc.code}


def _project(request: HttpRequest, code: str) -> tuple[Project, Actor] | HttpResponse:
    """The project, if the signed-in user may attach to it: its registry's or an operator."""
    p = selectors.project(code)
    if p is None:
        raise Http404
    if not request.user.is_authenticated:
        return redirect(f"{reverse('portal:login')}?next={request.path}")
    actor = Actor.for_user(request.user)
    if not actor.may_act_for(p.registry_id):
        reason = _("Only the project's registry attaches its documents.")
        return render(request, "403.html", {"reason": reason}, status=403)
    return p, actor


def attach(request: HttpRequest, code: str) -> HttpResponse:
    found = _project(request, code)
    if isinstance(found, HttpResponse):
        return found
    project, actor = found
    form = DocumentForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        content = upload.read()
        try:
            # Run again, it stores the same file again (by its digest): harmless.
            document = durably(
                lambda: services.project_document_attach(
                    actor=actor,
                    project=project.pk,
                    kind=form.cleaned_data["kind"],
                    title=form.cleaned_data["title"],
                    content=content,
                    # What the bytes are; a file of no accepted type keeps the browser's claim,
                    # which the service then refuses.
                    media_type=documents.sniff(content) or upload.content_type or "",
                )
            )
        except DomainError as exc:
            field, said = attach_error(exc)
            form.add_error(field, said)
        else:
            messages.success(
                request,
                _("Attached “%(title)s”: ledger entry #%(seq)s.")
                % {"title": document.title, "seq": document.entry_seq},
            )
            return redirect(reverse("portal:project", args=[project.code]) + "#documents-h")
    status = 422 if request.method == "POST" else 200
    return render(
        request, "portal/document_attach.html", {"project": project, "form": form}, status=status
    )
