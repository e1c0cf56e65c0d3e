"""API keys in the admin: listed (prefix, organization, scopes, dates; never the hash), revoked
by an action, and made by an add form whose response shows the new key once, in a message.

Keys are access control, not ledger state, but they are still written only through
``services.apikey_create`` / ``apikey_revoke``, so there is one way to make or revoke one.
Imported at the end of ``ledger/admin.py``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils import timezone

from bluecarbon.rows import adopt

from . import services
from .exceptions import DomainError
from .models import ApiKey, Organization


class ApiKeyCreateForm(forms.ModelForm):
    """What the add form asks; the prefix and the secret are made by the service."""

    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices, widget=forms.CheckboxSelectMultiple
    )
    expires_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=36_500,
        label="Expires after (days)",
        help_text="Leave empty for a key that does not expire.",
    )

    class Meta:
        model = ApiKey
        fields = ("organization", "name", "scopes")


@admin.action(description="Revoke selected keys")
def revoke_keys(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    live = list(queryset.filter(revoked_at__isnull=True).values_list("prefix", flat=True))
    for prefix in live:
        services.apikey_revoke(prefix=prefix)
    modeladmin.message_user(request, f"{len(live)} key(s) revoked.", messages.SUCCESS)


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "live":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        return queryset


# Everything shown about a key. secret_sha256 is deliberately absent: it has no use on a screen,
# and a hash that never leaves the database cannot be used to test guesses offline.
_SHOWN = (
    "prefix",
    "organization",
    "name",
    "scopes",
    "created_at",
    "expires_at",
    "revoked_at",
    "last_used_at",
)


class ApiKeyAdmin(admin.ModelAdmin):
    list_display = _SHOWN
    list_filter = (KeyStateFilter, "organization")
    list_select_related = ("organization",)
    search_fields = ("prefix", "name", "organization__handle")
    ordering = ("-pk",)
    actions = [revoke_keys]
    form = ApiKeyCreateForm

    # Keys are never edited (a key with other scopes is another key) and never deleted (a
    # revoked key stays listed, so its prefix in an old log line still names someone).
    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ("organization", "name", "scopes", "expires_days") if obj is None else _SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return () if obj is None else _SHOWN

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kw: Any) -> Any:
        if db_field.name == "organization":
            kw["queryset"] = Organization.objects.order_by("handle")
        return super().formfield_for_foreignkey(db_field, request, **kw)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        data = form.cleaned_data
        days = data.get("expires_days")
        try:
            key, secret = services.apikey_create(
                organization=data["organization"].pk,
                name=data["name"],
                scopes=data["scopes"],
                expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
            )
        except DomainError as exc:  # unreachable: the form checks what the service checks
            raise ValueError(exc.message) from exc
        # The admin goes on with ``obj`` (its history entry, the response): make it the key.
        adopt(obj, key)
        obj._shown_once = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None
    ) -> HttpResponse:
        """Show the new key on this response, not after a redirect: a message carried over a
        redirect sits in the messages cookie (signed, not encrypted) until the next page."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "key": obj,
            "secret": getattr(obj, "_shown_once", ""),
            "changelist": reverse("admin:ledger_apikey_changelist"),
        }
        # Admin views are never_cache (no-store): the page is not kept by the browser.
        return HttpResponse(_CREATED.render(context, request))


_CREATED = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block content %}
<ul class="messagelist"><li class="warning">API key {{ key.prefix }} for
{{ key.organization.handle }} ({{ key.scopes|join:", " }}) was created. Copy it now: it is not
stored and will not be shown again.</li></ul>
<p><code id="api-key" style="font-size:1.1rem; user-select:all">{{ secret }}</code></p>
<p><a href="{{ changelist }}">Back to API keys</a></p>
{% endblock %}"""
)

admin.site.register(ApiKey, ApiKeyAdmin)
