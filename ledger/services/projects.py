"""Methodologies and projects, and the registry of origin and origin ids that projects and
issuances are registered once under.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import IntegrityError, transaction

from .. import locks, records, validation
from ..actors import Actor
from ..core import origin
from ..exceptions import (
    CommonCode,
    Conflict,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from ..models import Batch, Ecosystem, Methodology, Organization, Project, Role, StoragePathway
from .append import _ledger_append
from .checks import _CODE, _area, _geometry, _get, _jurisdiction


@transaction.atomic
def methodology_register(
    *,
    actor: Actor,
    code: str,
    name: str,
    standard: str,
    ecosystems: Iterable[str],
    name_zh: str = "",
) -> Methodology:
    validation.require(actor.is_operator, "only operators register methodologies")
    code = validation.text(code, "code", max_length=64)
    if Methodology.objects.filter(code=code).exists():
        raise Conflict(f"methodology {code} exists", code=ErrorCode.DUPLICATE)
    eco = sorted({validation.choice(e, "ecosystems", Ecosystem.values) for e in ecosystems})
    m = Methodology.objects.create(
        code=code,
        name=validation.text(name, "name", max_length=300),
        name_zh=validation.text(name_zh, "name_zh", max_length=300, required=False),
        standard=validation.text(standard, "standard", max_length=100),
        ecosystems=eco,
    )
    _ledger_append(
        type="methodology.register",
        actor=actor,
        data={"methodology": records.methodology_record(m)},
    )
    return m


def _origin_registry(value: str, *, default: str | None = None) -> str:
    """The list's code for a registry of origin as typed (ledger/core/origin.py), or the handle
    of one of this ledger's own registry organizations. ``default`` (a value stored before the
    list existed) is kept as it is when it names neither."""
    text = validation.text(value, "origin_registry", max_length=64)
    try:
        return origin.registry_code(text)
    except origin.OriginError as exc:
        org = Organization.objects.filter(handle__iexact=origin.normalise(text)).first()
        if org is not None and org.has_role(Role.REGISTRY):
            return org.handle
        if default is not None:
            return default
        raise InvalidInput(exc.message, detail={"origin_registry": exc.code}) from None


def _origin_key(key: Callable[[], str], field: str) -> str:
    try:
        found = key()
    except origin.OriginError as exc:
        raise InvalidInput(f"{field}: {exc.message}", detail={field: exc.code}) from None
    if len(found) > 128:  # NFKC may lengthen an id
        raise InvalidInput(f"{field} is too long once normalised", detail={field: "too_long"})
    return found


def _project_origin_clash(registry: str, key: str) -> str | None:
    """The code of a project registered under the same origin key, if any. Projects registered
    before origin keys have none in the table: they are compared under the rule here. That set
    no longer grows, so no lock is needed for it; new rows are kept apart by the database's
    unique constraint on (origin_registry, origin_key)."""
    same = Project.objects.filter(origin_registry=registry, origin_key=key).first()
    if same is not None:
        return same.code
    legacy = Project.objects.filter(origin_rule=0).values_list(
        "code", "origin_registry", "origin_id"
    )
    for code, reg, oid in legacy.iterator():
        if origin.legacy_project_key(reg, oid) == (registry, key):
            return str(code)
    return None


def _batch_origin_clash(registry: str, key: str) -> str | None:
    """As ``_project_origin_clash``, for an issuance's origin transaction id."""
    same = Batch.objects.filter(origin_registry=registry, origin_tx_key=key).first()
    if same is not None:
        return same.serial
    legacy = Batch.objects.filter(origin_rule=0, origin_tx_id__isnull=False).values_list(
        "serial", "origin_registry", "origin_tx_id"
    )
    for serial, reg, tx in legacy.iterator():
        if origin.legacy_tx_key(reg, tx or "") == (registry, key):
            return str(serial)
    return None


@transaction.atomic
def project_register(
    *,
    actor: Actor,
    registry: int,
    code: str,
    name: str,
    ecosystem: str,
    storage_pathway: str,
    methodology: int,
    jurisdiction: str,
    location: dict[str, Any],
    area_m2: int,
    developer: int,
    validation_body: str,
    origin_registry: str = "",
    origin_id: str = "",
    status: str = Project.Status.REGISTERED,
    name_zh: str = "",
) -> Project:
    reg = _get(Organization, registry)
    if reg is None or not actor.may_act_for(reg.pk):
        raise NotFound(f"organization {registry} not found")
    if not reg.has_role(Role.REGISTRY):
        raise PermissionDenied("only a registry registers projects")
    dev = _get(Organization, developer)
    if dev is None:
        raise NotFound(f"developer {developer} not found", detail={"developer": "not_found"})
    meth = _get(Methodology, methodology)
    if meth is None:
        raise NotFound(f"methodology {methodology} not found", detail={"methodology": "not_found"})
    code = validation.text(code, "code", max_length=64)
    if not _CODE.match(code):
        raise InvalidInput(
            "code may hold letters, digits, '.', '_' and '-'", detail={"code": "invalid"}
        )
    eco = validation.choice(ecosystem, "ecosystem", Ecosystem.values)
    if meth.ecosystems and eco not in meth.ecosystems:
        raise Unprocessable(
            f"methodology {meth.code} does not cover {eco}",
            code=CommonCode.INVALID_FIELD,
            detail={"methodology": "ecosystem"},
        )
    area_m2 = _area(area_m2)
    origin_registry = _origin_registry(origin_registry or reg.handle)
    origin_id = validation.text(origin_id or code, "origin_id", max_length=128)
    key = _origin_key(lambda: origin.origin_key(origin_registry, origin_id), "origin_id")
    if Project.objects.filter(code=code).exists():
        raise Conflict(f"project {code} exists", code=ErrorCode.DUPLICATE)

    def duplicate_origin(existing: str | None) -> Conflict:
        return Conflict(
            f"{origin_registry} project {origin_id} is already registered"
            + (f" (as project {existing})" if existing else ""),
            code=ErrorCode.DUPLICATE_ORIGIN,
            detail={"origin_id": "duplicate"},
        )

    fields = {
        "code": code,
        "name": validation.text(name, "name", max_length=300),
        "name_zh": validation.text(name_zh, "name_zh", max_length=300, required=False),
        "ecosystem": eco,
        "storage_pathway": validation.choice(
            storage_pathway, "storage_pathway", StoragePathway.values
        ),
        "methodology": meth,
        "jurisdiction": _jurisdiction(jurisdiction),
        "location": _geometry(location),
        "area_m2": area_m2,
        "registry": reg,
        "developer": dev,
        "validation_body": validation.text(validation_body, "validation_body", max_length=200),
        "origin_registry": origin_registry,
        "origin_id": origin_id,
        "origin_key": key,
        "origin_rule": origin.ORIGIN_RULE,
        "status": validation.choice(status, "status", Project.Status.values),
    }
    if (existing := _project_origin_clash(origin_registry, key)) is not None:
        raise duplicate_origin(existing)
    try:
        with transaction.atomic():  # a concurrent registration of the same code or origin key
            p = Project.objects.create(**fields)
    except IntegrityError:
        if Project.objects.filter(code=code).exists():
            raise Conflict(f"project {code} exists", code=ErrorCode.DUPLICATE) from None
        raise duplicate_origin(None) from None
    _ledger_append(
        type="project.register", actor=actor, data={"project": records.project_record(p)}
    )
    return p


_PROJECT_MUTABLE = {
    "name",
    "name_zh",
    "status",
    "validation_body",
    "location",
    "area_m2",
    "storage_pathway",
}


@transaction.atomic
def project_update(*, actor: Actor, project: int, **changes: Any) -> Project:
    p = locks.project_lock(pid) if (pid := validation.object_id(project)) is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found")
    unknown = set(changes) - _PROJECT_MUTABLE
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))}", detail={k: "read_only" for k in unknown}
        )
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "name":
            clean[key] = validation.text(value, "name", max_length=300)
        elif key == "name_zh":  # "" takes a Chinese name away
            clean[key] = validation.text(value, "name_zh", max_length=300, required=False)
        elif key == "validation_body":
            clean[key] = validation.text(value, "validation_body", max_length=200)
        elif key == "status":
            clean[key] = validation.choice(value, "status", Project.Status.values)
        elif key == "storage_pathway":
            clean[key] = validation.choice(value, "storage_pathway", StoragePathway.values)
        elif key == "location":
            clean[key] = _geometry(value)
        elif key == "area_m2":
            clean[key] = _area(value)
    clean = {k: v for k, v in clean.items() if getattr(p, k) != v}
    if not clean:
        return p
    for key, value in clean.items():
        setattr(p, key, value)
    p.save(update_fields=list(clean))
    _ledger_append(type="project.update", actor=actor, data={"project": p.pk, "changes": clean})
    return p
