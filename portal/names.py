"""People and organizations by name, for a whole page at once.

The ledger names who acted as ``user:<id>``, ``apikey:<prefix>`` or ``system:<job>`` and auction
records name bidders by organization id. A page collects the ids it will show, resolves them here
in one query per kind (never one per row), and its templates look names up with the ``actor`` and
``org`` tags of ``portal_format``. A template that meets an id the page did not resolve still
gets its name (one query for that id), so a forgotten id costs a query, not a wrong page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.utils.translation import get_language, gettext

from ledger.models import ApiKey, Membership, Organization


def in_chinese() -> bool:
    return (get_language() or "").lower().startswith("zh")


def local_name(obj: object) -> str:
    """A project's, organization's or methodology's name in the reader's language: its
    ``name_zh`` on Chinese pages when the registrar gave one, else its ``name``."""
    zh = getattr(obj, "name_zh", "") or ""
    if zh and in_chinese():
        return str(zh)
    return str(getattr(obj, "name", "") or "")


@dataclass
class Names:
    """Display names of a page's actors and organizations, resolved in bulk."""

    # None: asked for and not found (so it is not asked for again).
    users: dict[int, tuple[str, Organization | None] | None] = field(default_factory=dict)
    keys: dict[str, tuple[str, Organization] | None] = field(default_factory=dict)
    orgs: dict[int, Organization | None] = field(default_factory=dict)

    @classmethod
    def of(cls, *, actors: Iterable[str] = (), organizations: Iterable[int | None] = ()) -> Names:
        names = cls()
        names.add(actors=actors, organizations=organizations)
        return names

    def add(self, *, actors: Iterable[str] = (), organizations: Iterable[int | None] = ()) -> None:
        user_ids: set[int] = set()
        prefixes: set[str] = set()
        for actor in actors:
            kind, _, rest = (actor or "").partition(":")
            if kind == "user" and rest.isdigit() and int(rest) not in self.users:
                user_ids.add(int(rest))
            elif kind == "apikey" and rest and rest not in self.keys:
                prefixes.add(rest)
        if user_ids:
            self.users.update(dict.fromkeys(user_ids))
            users = get_user_model().objects.filter(pk__in=user_ids)
            orgs = {
                m.user_id: m.organization
                for m in Membership.objects.filter(user_id__in=user_ids).select_related(
                    "organization"
                )
            }
            for u in users:
                full = u.get_full_name() if hasattr(u, "get_full_name") else ""
                self.users[u.pk] = (full or u.get_username(), orgs.get(u.pk))
        if prefixes:
            self.keys.update(dict.fromkeys(prefixes))
            for k in ApiKey.objects.filter(prefix__in=prefixes).select_related("organization"):
                self.keys[k.prefix] = (k.name, k.organization)
        wanted = {o for o in organizations if isinstance(o, int) and o not in self.orgs}
        if wanted:
            self.orgs.update(dict.fromkeys(wanted))
            self.orgs.update(Organization.objects.in_bulk(wanted))

    def organization(self, pk: int | None) -> str:
        if pk is None:
            return ""
        if pk not in self.orgs:
            self.add(organizations=[pk])
        org = self.orgs.get(pk)
        return local_name(org) if org is not None else gettext("organization %(id)s") % {"id": pk}

    def actor(self, actor: str) -> str:
        """``user:4`` -> ``Li Wei (Ningbo Energy)``; ``system:clear`` -> ``System (clear)``."""
        kind, _, rest = (actor or "").partition(":")
        if kind == "system":
            return gettext("System (%(job)s)") % {"job": rest}
        if kind == "user" and rest.isdigit():
            if int(rest) not in self.users:
                self.add(actors=[actor])
            found = self.users.get(int(rest))
            if found is None:
                return gettext("user %(id)s") % {"id": rest}
            name, org = found
            return f"{name} ({local_name(org)})" if org is not None else name
        if kind == "apikey" and rest:
            if rest not in self.keys:
                self.add(actors=[actor])
            key = self.keys.get(rest)
            if key is None:
                return gettext("API key %(prefix)s") % {"prefix": rest}
            return gettext("%(org)s, API key %(key)s") % {
                "org": local_name(key[1]),
                "key": key[0],
            }
        return actor or ""
