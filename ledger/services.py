"""Every write to the registry. Each public function validates, locks (in the order given in
``locks.py``), changes the derived tables and appends exactly one ledger entry, all in one
transaction: either the change and its entry are both committed, or neither is.

Quantities are integers of kgCO2e. Errors are ``DomainError`` subclasses with stable codes;
a function that raises has written nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypedDict

from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, F, Value
from django.utils import timezone

from . import jobs, locks, records, selectors, validation
from .actors import Actor
from .core import merkle, origin
from .core.entry import TRANSFER_BYTES, encode_entry, entry_hash, format_time
from .core.quantity import (
    MAX_AREA_M2,
    MAX_SHARE_BP,
    QuantityError,
    buffer_withheld,
    check_kg,
)
from .entry_auth import entry_key
from .exceptions import (
    CommonCode,
    Conflict,
    DomainError,
    ErrorCode,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from .models import (
    Account,
    ApiKey,
    Batch,
    Cancellation,
    Checkpoint,
    Ecosystem,
    EscrowHold,
    Holding,
    LedgerEntry,
    MerkleNode,
    Methodology,
    Organization,
    Project,
    Retirement,
    Reversal,
    Role,
    StoragePathway,
)

_JURISDICTION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_COORDINATE = re.compile(r"^-?[0-9]{1,3}(\.[0-9]{1,12})?\Z")  # \Z: no trailing newline
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_GEOJSON_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


# ---- the append ---------------------------------------------------------------------------------

# An entry as written: (seq, body, type, mac), the columns of ``ledger_ledgerentry``.
EntryRow = tuple[int, bytes, str, bytes | None]

_TRANSFER_DATA = frozenset(("batch", "from", "quantity", "to"))


def entry_body(
    *, seq: int, prev: bytes, time: str, type: str, actor: str, data: dict[str, Any]
) -> bytes:
    """An entry's bytes: exactly ``encode_entry``'s (RFC 8785), for every append.

    A ``credit.transfer`` of four integers, the commonest entry, is formatted from a byte
    template instead (1.8 us against 2.3 for ``encode_entry``, best of 15 runs). Its bytes are
    used only when they are what the verifier accepts as a canonical transfer
    (``TRANSFER_BYTES``: an ASCII actor without quote or backslash, integers of at most 15
    digits, the time in ``format_time``'s form); anything else is encoded.
    ``tests/ledger/test_entry_body.py`` checks the two against each other."""
    if (
        type == "credit.transfer"
        and data.keys() == _TRANSFER_DATA
        # ints, not bools or strings (which the template would write unquoted)
        and data["batch"].__class__ is int
        and data["from"].__class__ is int
        and data["quantity"].__class__ is int
        and data["to"].__class__ is int
    ):
        body = (
            f'{{"actor":"{actor}","data":{{"batch":{data["batch"]},"from":{data["from"]},'
            f'"quantity":{data["quantity"]},"to":{data["to"]}}},"prev":"{prev.hex()}",'
            f'"seq":{seq},"time":"{time}","type":"credit.transfer","v":1}}'
        ).encode()
        if TRANSFER_BYTES.fullmatch(body) is not None:
            return body
    return encode_entry(seq=seq, prev=prev, time=time, type=type, actor=actor, data=data)


def _ledger_append(
    *,
    type: str,
    actor: Actor,
    data: dict[str, Any],
    at: dt.datetime | None = None,
    head: tuple[int, bytes] | None = None,
    also: Callable[[int], list[tuple[str, list[Any]]]] | None = None,
) -> LedgerEntry:
    """Append one entry: ``_ledger_append_many`` of one."""
    ((seq, body, _, _),) = _ledger_append_many(
        entries=[(type, data)], actor=actor, at=at, head=head, also=also
    )
    return LedgerEntry(seq=seq, body=body, type=type)


def _ledger_append_many(
    *,
    entries: list[tuple[str, dict[str, Any]]],
    actor: Actor,
    at: dt.datetime | None = None,
    head: tuple[int, bytes] | None = None,
    also: Callable[[int], list[tuple[str, list[Any]]]] | None = None,
) -> list[EntryRow]:
    """Append ``entries`` ((type, data) each), in order, all with one actor and one time: the
    only writer of ledger entries. Must run inside the caller's transaction, after its other
    locks. Returns the rows written, in order.

    ``head``: what ``locks.ledger_head_lock()`` returned to this transaction, if it already
    holds the head (saves reading it again). ``also(seq)``: the entries' own rows to write with
    them, as data-modifying statements (INSERT/UPDATE ... without RETURNING) that may name the
    first entry's seq. Every statement between locking the head and committing is time every
    other writer waits, so on PostgreSQL one entry goes in one round trip with those statements
    and the head update, and more than one by COPY (one round trip for any number), then the
    head update. Appending N entries here or one by one gives the same bytes, MACs and head
    (``tests/ledger/test_services_append.py``)."""
    if not entries:
        return []
    size, last = head or locks.ledger_head_lock()
    time = format_time(at or timezone.now())
    key = entry_key()
    label = actor.label
    rows: list[EntryRow] = []
    for seq, (type_, data) in enumerate(entries, start=size):
        body = entry_body(seq=seq, prev=last, time=time, type=type_, actor=label, data=data)
        last = entry_hash(body)
        rows.append((seq, body, type_, key.mac(last) if seq >= key.since else None))
    extra = also(size) if also is not None else []
    head_update = "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1"
    new_head: list[Any] = [size + len(rows), last]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) == 1:
            ctes = "".join(f", x{i} AS ({sql})" for i, (sql, _) in enumerate(extra))
            cursor.execute(
                "WITH e AS (INSERT INTO ledger_ledgerentry (seq, body, type, mac) "
                f"VALUES (%s, %s, %s, %s)){ctes} {head_update}",
                [*rows[0], *(v for _, values in extra for v in values), *new_head],
            )
        else:
            if connection.vendor == "postgresql":
                # COPY inserts only (the append-only triggers guard UPDATE, DELETE and
                # TRUNCATE). Through the driver's own cursor, so its errors are made Django's
                # here (a deadlock must be an OperationalError to be retried or answered 503,
                # ledger/apis/errors.py).
                with (
                    connection.wrap_database_errors,
                    cursor.cursor.copy(
                        "COPY ledger_ledgerentry (seq, body, type, mac) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(
                    "INSERT INTO ledger_ledgerentry (seq, body, type, mac) VALUES (%s, %s, %s, %s)",
                    rows,
                )
            cursor.execute(head_update, new_head)
            for sql, values in extra:
                cursor.execute(sql, values)
    # robust: the entries are committed; a broker that is down must not turn a successful write
    # into an error (a retrying client would apply it twice). Beat's backstop covers the miss.
    transaction.on_commit(_checkpoint_soon, robust=True)
    return rows


def _big(n: int) -> Value:
    """An integer for an ``F() +`` update, bound as bigint: with server-side binding an untyped
    Python int goes as a 4-byte integer, and from 2^31 kg (2.1 million t) on it wrapped silently."""
    return Value(n, output_field=BigIntegerField())


def entry_mac(seq: int, digest: bytes) -> bytes | None:
    """The MAC entry ``seq`` must carry (ledger/entry_auth.py), or None before the key's
    ``since``."""
    key = entry_key()
    return key.mac(digest) if seq >= key.since else None


def ledger_append(
    *,
    type: str,
    actor: Actor,
    data: dict[str, Any],
    at: dt.datetime | None = None,
    head: tuple[int, bytes] | None = None,
    also: Callable[[int], list[tuple[str, list[Any]]]] | None = None,
) -> LedgerEntry:
    """The append, for other apps' services (auctions): same rules, same transaction."""
    return _ledger_append(type=type, actor=actor, data=data, at=at, head=head, also=also)


def ledger_head_lock() -> tuple[int, bytes]:
    """Lock the ledger head now (the last lock a write takes): (size, last hash). For a service
    that must know its entry's sequence number before writing the rows that name it."""
    return locks.ledger_head_lock()


def _next_seq_locked() -> int:
    """The sequence number the next append will get; caller holds the head lock."""
    return locks.ledger_head_lock()[0]


_checkpoint_guard = threading.Lock()
_checkpoint_last_enqueued = 0.0


def _checkpoint_soon() -> None:
    """After a commit: make sure a checkpoint task runs within the interval. Each process
    enqueues at most one per interval, delayed by the interval, so every write is covered by a
    task that starts after it, and a burst of writes costs one checkpoint."""
    from django.conf import settings

    global _checkpoint_last_enqueued
    interval = settings.LEDGER_CHECKPOINT_INTERVAL
    with _checkpoint_guard:
        now = time.monotonic()
        if now - _checkpoint_last_enqueued < interval:
            return
        _checkpoint_last_enqueued = now
    jobs.send(jobs.CHECKPOINT, countdown=interval)
    jobs.send(jobs.WEBHOOKS_DISPATCH, countdown=interval)


# ---- validation helpers ----------------------------------------------------------------------


def _kg(value: object, field: str = "quantity") -> int:
    try:
        return check_kg(value)
    except QuantityError as exc:
        raise InvalidInput(
            f"{field}: {exc.message}",
            code=ErrorCode.INVALID_QUANTITY,
            detail={field: exc.code},
        ) from None


def _jurisdiction(value: object, field: str = "jurisdiction") -> str:
    if not isinstance(value, str) or not _JURISDICTION.match(value):
        raise InvalidInput(
            f"{field} must be an ISO 3166-2 code such as CN-ZJ", detail={field: "invalid"}
        )
    return value


def _sha256(value: object, field: str) -> str:
    if not isinstance(value, str) or not _SHA256_HEX.match(value):
        raise InvalidInput(f"{field} must be 64 lowercase hex digits", detail={field: "invalid"})
    return value


def _geometry(value: object) -> dict[str, Any]:
    ok = (
        isinstance(value, dict)
        # A str first: {"type": {}} is not hashable, and the set lookup would raise.
        and isinstance(value.get("type"), str)
        and value.get("type") in _GEOJSON_TYPES
        and isinstance(value.get("coordinates"), list)
    )
    if not ok or not isinstance(value, dict):
        raise InvalidInput(
            "location must be a GeoJSON geometry (Point, Polygon, ...) with coordinates",
            detail={"location": "invalid"},
        )

    # Floats are not welcome in entry bytes: coordinates travel as decimal strings (or small
    # integers), exactly as given, so what is signed is what was submitted.
    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if isinstance(node, float):
            raise InvalidInput(
                'location coordinates must be decimal strings, e.g. "121.95", not floats',
                detail={"location": "float_coordinates"},
            )
        ok = (isinstance(node, str) and _COORDINATE.match(node)) or (
            isinstance(node, int) and not isinstance(node, bool) and -180 <= node <= 180
        )
        if not ok:
            raise InvalidInput(
                'location coordinates must be decimal strings, e.g. "121.95"',
                detail={"location": "invalid"},
            )

    walk(value["coordinates"])
    _geometry_check(value["type"], value["coordinates"])
    return {"type": value["type"], "coordinates": value["coordinates"]}


# RFC 7946: a geometry's type says how deep its positions are nested (§3.1.2-3.1.7).
_GEOJSON_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _geometry_check(type_: str, coordinates: list[Any]) -> None:
    """The shape of each geometry type, WGS 84 ranges of every position (§4: longitude, then
    latitude), and closed polygon rings of at least four positions (§3.1.6). Run on input only:
    entries written before these checks keep verifying (the replay does not repeat them)."""

    def refuse(message: str, code: str) -> InvalidInput:
        return InvalidInput(f"location {message}", detail={"location": code})

    def position(node: Any, path: str) -> None:
        # §3.1.1: longitude, latitude and an optional altitude (more SHOULD NOT be sent).
        if (
            not isinstance(node, list)
            or not 2 <= len(node) <= 3
            or any(isinstance(c, list) for c in node)
        ):
            raise refuse(f"{path} must be a position [longitude, latitude]", "invalid")
        for name, c, bound in (("longitude", node[0], 180), ("latitude", node[1], 90)):
            if not -bound <= Decimal(c) <= bound:
                raise refuse(f"{path}: {name} {c} is outside -{bound}..{bound}", "out_of_range")

    def walk(node: Any, depth: int, path: str) -> None:
        if depth == 0:
            position(node, path)
            return
        if not isinstance(node, list) or not node:
            raise refuse(f"{path} must be a non-empty list", "invalid")
        for i, item in enumerate(node):
            walk(item, depth - 1, f"{path}[{i}]")

    def line(node: list[Any], path: str) -> None:
        if len(node) < 2:
            raise refuse(f"{path}: a line needs at least 2 positions", "too_few_positions")

    def polygon(rings: list[Any], path: str) -> None:
        for i, ring in enumerate(rings):
            if len(ring) < 4:
                raise refuse(
                    f"{path}[{i}]: a polygon ring needs at least 4 positions", "too_few_positions"
                )
            if [Decimal(c) for c in ring[0]] != [Decimal(c) for c in ring[-1]]:
                raise refuse(
                    f"{path}[{i}]: a polygon ring must end at its first position",
                    "ring_not_closed",
                )

    walk(coordinates, _GEOJSON_DEPTH[type_], "coordinates")
    if type_ == "LineString":
        line(coordinates, "coordinates")
    elif type_ == "MultiLineString":
        for i, part in enumerate(coordinates):
            line(part, f"coordinates[{i}]")
    elif type_ == "Polygon":
        polygon(coordinates, "coordinates")
    elif type_ == "MultiPolygon":
        for i, part in enumerate(coordinates):
            polygon(part, f"coordinates[{i}]")


def _get(model: Any, value: object) -> Any:
    key = validation.object_id(value)
    return model.objects.filter(pk=key).first() if key is not None else None


def _account(account_id: object, actor: Actor | None = None, field: str = "account") -> Account:
    account = _get(Account, account_id)
    # A foreign account is reported exactly like a missing one: no existence leak.
    if account is None or (actor is not None and not actor.may_act_for(account.organization_id)):
        raise NotFound(f"{field} {account_id} not found", detail={field: "not_found"})
    return account


def _area(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(
            "area must be an integer number of square metres",
            code=ErrorCode.INVALID_QUANTITY,
            detail={"area": "invalid"},
        )
    if not 0 < value <= MAX_AREA_M2:
        raise InvalidInput(
            "area must be greater than zero and at most 1,000,000,000 ha",
            code=ErrorCode.INVALID_QUANTITY,
            detail={"area": "invalid"},
        )
    return value


# ---- organizations and accounts --------------------------------------------------------------


@transaction.atomic
def organization_register(
    *, actor: Actor, handle: str, name: str, roles: Iterable[str]
) -> Organization:
    validation.require(actor.is_operator, "only operators register organizations")
    handle = validation.text(handle, "handle", max_length=64)
    if not _CODE.match(handle) or handle != handle.lower():
        raise InvalidInput(
            "handle must be lowercase letters, digits, '-', '_' or '.'",
            detail={"handle": "invalid"},
        )
    role_list = sorted({validation.choice(r, "roles", Role.values) for r in roles})
    if Organization.objects.filter(handle=handle).exists():
        raise Conflict(f"organization {handle} exists", code=ErrorCode.DUPLICATE)
    org = Organization.objects.create(
        handle=handle, name=validation.text(name, "name", max_length=200), roles=role_list
    )
    _ledger_append(
        type="org.register",
        actor=actor,
        data={"organization": records.organization_record(org)},
    )
    if Role.REGISTRY in role_list:
        account_open(
            actor=actor,
            organization=org.pk,
            name=f"{org.name} buffer pool",
            kind=Account.Kind.BUFFER,
        )
    return org


@transaction.atomic
def account_open(
    *, actor: Actor, organization: int, name: str, kind: str = Account.Kind.HOLDING
) -> Account:
    org = _get(Organization, organization)
    if org is None or not actor.may_act_for(org.pk):
        raise NotFound(f"organization {organization} not found")
    kind = validation.choice(kind, "kind", Account.Kind.values)
    if kind == Account.Kind.BUFFER:
        validation.require(actor.is_operator, "only operators open buffer pools")
        if not org.has_role(Role.REGISTRY):
            raise Unprocessable("only registries hold a buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
        if Account.objects.filter(organization=org, kind=kind).exists():
            raise Conflict("this registry already has a buffer pool", code=ErrorCode.DUPLICATE)
    account = Account.objects.create(
        organization=org, kind=kind, name=validation.text(name, "name", max_length=200)
    )
    _ledger_append(
        type="account.open",
        actor=actor,
        data={"account": records.account_record(account)},
    )
    return account


# ---- methodologies and projects ---------------------------------------------------------------


@transaction.atomic
def methodology_register(
    *, actor: Actor, code: str, name: str, standard: str, ecosystems: Iterable[str]
) -> Methodology:
    validation.require(actor.is_operator, "only operators register methodologies")
    code = validation.text(code, "code", max_length=64)
    if Methodology.objects.filter(code=code).exists():
        raise Conflict(f"methodology {code} exists", code=ErrorCode.DUPLICATE)
    eco = sorted({validation.choice(e, "ecosystems", Ecosystem.values) for e in ecosystems})
    m = Methodology.objects.create(
        code=code,
        name=validation.text(name, "name", max_length=300),
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


_PROJECT_MUTABLE = {"name", "status", "validation_body", "location", "area_m2", "storage_pathway"}


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


# ---- issuance -----------------------------------------------------------------------------------


@transaction.atomic
def batch_issue(
    *,
    actor: Actor,
    project: int,
    monitoring_start: dt.date,
    monitoring_end: dt.date,
    vintage: int | None = None,
    verification_body: str,
    verification_report_sha256: str,
    quantity: int,
    buffer_share_bp: int,
    holder: int | None = None,
    origin_registry: str = "",
    origin_tx_id: str | None = None,
) -> Batch:
    """Issue verified credits for one monitoring period: the buffer share goes to the
    registry's buffer pool, the rest to ``holder`` (default: the developer's first account)."""
    quantity = _kg(quantity)
    if (
        not isinstance(buffer_share_bp, int)
        or isinstance(buffer_share_bp, bool)
        or not 0 <= buffer_share_bp <= MAX_SHARE_BP
    ):
        raise InvalidInput(
            "buffer share must be between 0 and 100 %",
            code=ErrorCode.INVALID_SHARE,
            detail={"buffer_share": "out_of_range"},
        )
    # Exactly dates: a datetime is a date subclass, but its isoformat is not a date's.
    if type(monitoring_start) is not dt.date or type(monitoring_end) is not dt.date:
        raise InvalidInput(
            "monitoring period start and end must be dates", code=ErrorCode.INVALID_PERIOD
        )
    if monitoring_end < monitoring_start:
        raise InvalidInput(
            "the monitoring period ends before it starts",
            code=ErrorCode.INVALID_PERIOD,
            detail={"monitoring_end": "before_start"},
        )
    vintage = monitoring_end.year if vintage is None else vintage
    if not isinstance(vintage, int) or not 1990 <= vintage <= 2200:
        raise InvalidInput("vintage must be a year", detail={"vintage": "invalid"})
    report = _sha256(verification_report_sha256, "verification_report_sha256")
    body = validation.text(verification_body, "verification_body", max_length=200)
    tx_key: str | None = None
    if origin_tx_id is not None:
        origin_tx_id = validation.text(origin_tx_id, "origin_tx_id", max_length=128)
        tx_key = _origin_key(lambda: origin.tx_key(str(origin_tx_id)), "origin_tx_id")

    p = locks.project_lock(pid) if (pid := validation.object_id(project)) is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found", detail={"project": "not_found"})
    if p.status in (Project.Status.SUSPENDED, Project.Status.CLOSED):
        raise Conflict(f"project {p.code} is {p.status}", code=ErrorCode.PROJECT_NOT_ACTIVE)
    if origin_registry:
        origin_registry = _origin_registry(origin_registry)
    else:  # the project's, which may predate the list of registries
        origin_registry = _origin_registry(p.origin_registry, default=p.origin_registry)
    if holder is None:
        holder_account = p.developer.accounts.filter(kind=Account.Kind.HOLDING).first()
        if holder_account is None:
            raise Unprocessable(
                "the developer has no holding account", detail={"holder": "missing"}
            )
    else:
        holder_account = _account(holder, None, "holder")
        if holder_account.kind != Account.Kind.HOLDING:
            raise Unprocessable(
                "credits are issued to a holding account", code=ErrorCode.BUFFER_ACCOUNT
            )
    buffer = Account.objects.filter(organization_id=p.registry_id, kind=Account.Kind.BUFFER).first()
    withheld = buffer_withheld(quantity, buffer_share_bp)
    if withheld and buffer is None:
        raise Unprocessable("the registry has no buffer pool", code=ErrorCode.BUFFER_ACCOUNT)

    # Double counting: one tonne, one issuance. The project lock serializes this check.
    overlap = Batch.objects.filter(
        project=p, monitoring_start__lte=monitoring_end, monitoring_end__gte=monitoring_start
    ).first()
    if overlap is not None:
        raise Conflict(
            f"monitoring period overlaps batch {overlap.serial} "
            f"({overlap.monitoring_start} to {overlap.monitoring_end})",
            code=ErrorCode.OVERLAPPING_PERIOD,
            detail={"overlaps": overlap.serial},
        )
    if (
        tx_key is not None
        and (existing := _batch_origin_clash(origin_registry, tx_key)) is not None
    ):
        raise Conflict(
            f"{origin_registry} transaction {origin_tx_id} was already issued (as {existing})",
            code=ErrorCode.DUPLICATE_ORIGIN,
            detail={"origin_tx_id": "duplicate"},
        )

    number = p.batches.count() + 1
    serial = f"BC-{p.code}-{monitoring_start:%Y%m%d}-{monitoring_end:%Y%m%d}-{number:03d}"
    try:
        with transaction.atomic():
            b = Batch.objects.create(
                serial=serial,
                project=p,
                monitoring_start=monitoring_start,
                monitoring_end=monitoring_end,
                vintage=vintage,
                verification_body=body,
                verification_report_sha256=report,
                buffer_share_bp=buffer_share_bp,
                origin_registry=origin_registry,
                origin_tx_id=origin_tx_id,
                origin_tx_key=tx_key,
                origin_rule=origin.ORIGIN_RULE,
                issued=quantity,
                buffer_withheld=withheld,
            )
    except IntegrityError:
        raise Conflict(
            "this issuance conflicts with an existing batch", code=ErrorCode.DUPLICATE_ORIGIN
        ) from None
    pairs = [(holder_account.pk, b.pk)] + ([(buffer.pk, b.pk)] if buffer and withheld else [])
    held = locks.holdings_lock(pairs)
    if quantity - withheld:
        held[(holder_account.pk, b.pk)].tradable = quantity - withheld
        held[(holder_account.pk, b.pk)].save(update_fields=["tradable"])
    if withheld and buffer is not None:
        held[(buffer.pk, b.pk)].tradable = withheld
        held[(buffer.pk, b.pk)].save(update_fields=["tradable"])
    _ledger_append(
        type="batch.issue",
        actor=actor,
        data={
            "batch": records.batch_record(b),
            "holder": holder_account.pk,
            "buffer_account": buffer.pk if buffer else None,
        },
    )
    return b


# ---- moving credits ------------------------------------------------------------------------------


def _batch(batch_id: object, *, lock: bool = True) -> Batch:
    """The batch, locked when the caller changes its totals (retire, cancel)."""
    key = validation.object_id(batch_id)
    if key is None:
        b = None
    elif lock:
        b = locks.batch_lock(key)
    else:
        b = Batch.objects.filter(pk=key).first()
    if b is None:
        raise NotFound(f"batch {batch_id} not found", detail={"batch": "not_found"})
    return b


def _check_tradable(account: Account, batch: Batch, tradable: int, quantity: int) -> None:
    if tradable >= quantity:
        return
    gone = (
        Retirement.objects.filter(account=account, batch=batch).exists()
        or Cancellation.objects.filter(account=account, batch=batch).exists()
    )
    if tradable == 0 and gone:
        raise Conflict(
            f"account {account.pk} holds no tradable credits of {batch.serial}: its credits "
            "of this batch were retired or cancelled, and those never move again",
            code=ErrorCode.CREDITS_RETIRED,
        )
    raise Conflict(
        f"account {account.pk} has {tradable} kg tradable of {batch.serial}, {quantity} needed",
        code=ErrorCode.INSUFFICIENT_BALANCE,
        detail={"tradable": tradable, "requested": quantity},
    )


def _sender(actor: Actor, account_id: object, field: str = "sender") -> Account:
    account = _account(account_id, actor, field)
    if account.kind == Account.Kind.BUFFER:
        raise Unprocessable(
            "buffer-pool credits only leave the pool through a reversal",
            code=ErrorCode.BUFFER_ACCOUNT,
        )
    return account


class Transfer(TypedDict):
    """One transfer of ``credit_transfer_many``: ``credit_transfer``'s arguments."""

    batch: int
    sender: int
    recipient: int
    quantity: int


def credit_transfer(
    *, actor: Actor, batch: int, sender: int, recipient: int, quantity: int
) -> LedgerEntry:
    """Move tradable credits between two accounts: ``credit_transfer_many`` of one.

    The registry's hottest write. Inside a caller's transaction it takes no savepoint (two
    round trips of ten): every check runs before the first write, so a refusal leaves the
    caller's transaction untouched, and after the first write only a database error can stop
    it, which aborts the whole transaction anyway."""
    one: Transfer = {"batch": batch, "sender": sender, "recipient": recipient, "quantity": quantity}
    try:
        if connection.in_atomic_block:
            ((seq, body, type_, _),) = _credit_transfers(actor, [one])
        else:
            with transaction.atomic():
                ((seq, body, type_, _),) = _credit_transfers(actor, [one])
    except _TransferRefused as refused:
        raise refused.error from None
    return LedgerEntry(seq=seq, body=body, type=type_)


def credit_transfer_many(*, actor: Actor, transfers: list[Transfer]) -> list[int]:
    """Apply ``transfers`` in order, exactly as ``credit_transfer`` called once for each would
    (same checks, same refusal, same balances, same entries), all or nothing, in a handful of
    statements whatever their number: the accounts and batches read at once, every holding
    locked at once (in id order), balances checked in order in memory, holdings written in one
    UPDATE, the entries appended together (``_ledger_append_many``, one time for all). Returns
    their entries' sequence numbers. A refusal is the error ``credit_transfer`` would raise for
    the first transfer it refuses, with that transfer's position in ``detail["index"]``; then
    nothing is written. Like ``credit_transfer``, it takes no savepoint inside a caller's
    transaction."""
    try:
        if connection.in_atomic_block:
            rows = _credit_transfers(actor, transfers)
        else:
            with transaction.atomic():
                rows = _credit_transfers(actor, transfers)
    except _TransferRefused as refused:
        refused.error.detail = {**refused.error.detail, "index": refused.index}
        raise refused.error from None
    return [row[0] for row in rows]


class _TransferRefused(Exception):
    """Which transfer of a set was refused, and why."""

    def __init__(self, index: int, error: DomainError) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _credit_transfers(actor: Actor, transfers: list[Transfer]) -> list[EntryRow]:
    """The checks of each transfer in order, then the writes; raises ``_TransferRefused`` for
    the first refused (nothing written). The checks go in three passes over the whole set (the
    input, the parties, the balances), each stopping at the first refusal: a transfer is
    refused by a later pass only if no earlier transfer is refused by any, which is the order
    of checking them one at a time."""
    refusal: _TransferRefused | None = None
    checked: list[tuple[int, int | None, int | None, int | None]] = []
    for index, t in enumerate(transfers):
        try:
            quantity = _kg(t["quantity"])
            if t["sender"] == t["recipient"]:
                raise Unprocessable(
                    "sender and recipient are the same account", code=ErrorCode.TRANSFER_TO_SELF
                )
        except DomainError as exc:
            refusal = _TransferRefused(index, exc)
            break
        checked.append(
            (
                quantity,
                validation.object_id(t["sender"]),
                validation.object_id(t["recipient"]),
                validation.object_id(t["batch"]),
            )
        )

    moves: list[tuple[int, int, int, int]] = []  # (quantity, sender, recipient, batch)
    accounts, batches = _transfer_parties(
        {a for _, src, dst, _ in checked for a in (src, dst)}, {b for *_, b in checked}
    )
    for index, (quantity, src, dst, b) in enumerate(checked):
        try:
            moves.append(
                (quantity, *_check_parties(actor, accounts, batches, transfers[index], src, dst, b))
            )
        except DomainError as exc:
            refusal = _TransferRefused(index, exc)
            break

    # No lock on the batch row: a transfer does not change it, and locking it would make every
    # transfer of one batch wait for the others.
    pairs = sorted({(a, b) for _, src, dst, b in moves for a in (src, dst)})
    held = locks.holdings_lock(pairs, create=False) if pairs else {}
    start = {pair: h.tradable for pair, h in held.items()}
    balance = dict(start)
    for index, (quantity, src, dst, b) in enumerate(moves):
        tradable = balance.get((src, b), 0)
        if tradable < quantity:  # refuse before writing anything, even an empty holding
            try:
                _check_tradable(
                    Account.objects.get(pk=src), Batch.objects.get(pk=b), tradable, quantity
                )
            except DomainError as exc:
                raise _TransferRefused(index, exc) from None
        balance[(src, b)] = tradable - quantity
        balance[(dst, b)] = balance.get((dst, b), 0) + quantity
    if refusal is not None:
        raise refusal
    if not moves:
        return []

    if len(held) < len(pairs):  # a recipient's first credits of a batch: its holding is new
        held = locks.holdings_lock(pairs)
    for pair, h in held.items():
        # A new holding may have been made, and credited, by another transfer since we
        # looked: add to its row as it is now (the rows locked above cannot have changed).
        h.tradable += balance[pair] - start.get(pair, 0)
    locks.holdings_save(*held.values())
    return _ledger_append_many(
        entries=[
            ("credit.transfer", {"batch": b, "from": src, "to": dst, "quantity": quantity})
            for quantity, src, dst, b in moves
        ],
        actor=actor,
    )


def _transfer_parties(
    account_ids: set[int | None], batch_ids: set[int | None]
) -> tuple[dict[int, tuple[str, int]], set[int]]:
    """Every account ((kind, organization) by id) and batch a set of transfers names, in one
    query: this is the hottest path in the registry. Ids that cannot be ids are looked up as 0,
    which names nothing."""
    a_ids = sorted(i if i is not None else 0 for i in account_ids)
    b_ids = sorted(i if i is not None else 0 for i in batch_ids)
    if not a_ids:
        return {}, set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'a', id, kind, organization_id FROM ledger_account WHERE id IN "
            f"({', '.join(['%s'] * len(a_ids))}) UNION ALL SELECT 'b', id, NULL, NULL "
            f"FROM ledger_batch WHERE id IN ({', '.join(['%s'] * len(b_ids))})",
            [*a_ids, *b_ids],
        )
        found = cursor.fetchall()
    accounts = {i: (kind, org) for t, i, kind, org in found if t == "a"}
    return accounts, {i for t, i, _, _ in found if t == "b"}


def _check_parties(
    actor: Actor,
    accounts: dict[int, tuple[str, int]],
    batches: set[int],
    given: Transfer,
    src: int | None,
    dst: int | None,
    batch: int | None,
) -> tuple[int, int, int]:
    """A transfer's sender, recipient and batch, checked in ``credit_transfer``'s order."""
    sender = accounts.get(src) if src is not None else None
    recipient = accounts.get(dst) if dst is not None else None
    # A foreign sender is reported exactly like a missing one: no existence leak.
    if sender is None or not actor.may_act_for(sender[1]):
        raise NotFound(f"sender {given['sender']} not found", detail={"sender": "not_found"})
    if recipient is None:
        raise NotFound(
            f"recipient {given['recipient']} not found", detail={"recipient": "not_found"}
        )
    if sender[0] == Account.Kind.BUFFER:
        raise Unprocessable(
            "buffer-pool credits only leave the pool through a reversal",
            code=ErrorCode.BUFFER_ACCOUNT,
        )
    if recipient[0] == Account.Kind.BUFFER:
        raise Unprocessable(
            "credits cannot be transferred into a buffer pool", code=ErrorCode.BUFFER_ACCOUNT
        )
    if batch is None or batch not in batches:
        raise NotFound(f"batch {given['batch']} not found", detail={"batch": "not_found"})
    assert src is not None and dst is not None  # found above
    return src, dst, batch


# Escrow holds whose reference starts with this belong to an auction: only the auction's own
# services move them (``managed=True``), so a seller cannot take back a lot under auction.
MANAGED_PREFIX = "auction:"


def _check_managed(reference: str, managed: bool) -> None:
    if reference.startswith(MANAGED_PREFIX) and not managed:
        raise Conflict(
            f"escrow hold '{reference}' belongs to an auction and moves only through it",
            code=ErrorCode.MANAGED_HOLD,
            detail={"reference": "managed"},
        )


@transaction.atomic
def escrow_hold(
    *,
    actor: Actor,
    batch: int,
    account: int,
    quantity: int,
    reference: str,
    managed: bool = False,
) -> EscrowHold:
    quantity = _kg(quantity)
    reference = validation.text(reference, "reference", max_length=200)
    _check_managed(reference, managed)
    acc = _sender(actor, account, "account")
    b = _batch(batch, lock=False)  # escrow does not change the batch's totals
    h = locks.holdings_lock([(acc.pk, b.pk)])[(acc.pk, b.pk)]
    _check_tradable(acc, b, h.tradable, quantity)
    h.tradable -= quantity
    h.escrowed += quantity
    h.save(update_fields=["tradable", "escrowed"])
    hold = EscrowHold.objects.create(
        account=acc, batch=b, quantity=quantity, remaining=quantity, reference=reference
    )
    _ledger_append(
        type="escrow.hold",
        actor=actor,
        data={
            "hold": {k: v for k, v in records.escrow_hold_state(hold).items() if k != "remaining"}
        },
    )
    return hold


def _escrow_take(
    actor: Actor,
    hold_id: int,
    quantity: int,
    recipient: Account | None = None,
    managed: bool = False,
) -> tuple[EscrowHold, int, dict[tuple[int, int], Holding]]:
    """Lock a hold and its holdings (and the recipient's, in the same ordered call) and take
    ``quantity`` out of escrow."""
    quantity = _kg(quantity)
    key = validation.object_id(hold_id)
    peek = (
        EscrowHold.objects.filter(pk=key).select_related("account").first()
        if key is not None
        else None
    )
    if peek is None or not actor.may_act_for(peek.account.organization_id):
        raise NotFound(f"escrow hold {hold_id} not found")
    _check_managed(peek.reference, managed)
    locks.batch_lock(peek.batch_id)
    pairs = [(peek.account_id, peek.batch_id)]
    if recipient is not None:
        pairs.append((recipient.pk, peek.batch_id))
    held = locks.holdings_lock(pairs)
    hold = locks.escrow_hold_lock(hold_id)
    assert hold is not None
    if quantity > hold.remaining:
        raise Conflict(
            f"escrow hold {hold.pk} has {hold.remaining} kg left, {quantity} asked",
            code=ErrorCode.INSUFFICIENT_BALANCE,
            detail={"remaining": hold.remaining, "requested": quantity},
        )
    hold.remaining -= quantity
    hold.save(update_fields=["remaining"])
    src = held[(hold.account_id, hold.batch_id)]
    src.escrowed -= quantity
    src.save(update_fields=["escrowed"])
    return hold, quantity, held


@transaction.atomic
def escrow_release(*, actor: Actor, hold: int, quantity: int, managed: bool = False) -> LedgerEntry:
    """Return escrowed credits to their holder's tradable balance."""
    taken, quantity, held = _escrow_take(actor, hold, quantity, managed=managed)
    h = held[(taken.account_id, taken.batch_id)]
    h.tradable += quantity
    h.save(update_fields=["tradable"])
    return _ledger_append(
        type="escrow.release", actor=actor, data={"hold": taken.pk, "quantity": quantity}
    )


@transaction.atomic
def escrow_deliver(
    *, actor: Actor, hold: int, recipient: int, quantity: int, managed: bool = False
) -> LedgerEntry:
    """Deliver escrowed credits to another account (auction settlement)."""
    validation.require(actor.is_operator, "only the operator delivers escrowed credits")
    dst = _account(recipient, None, "recipient")
    if dst.kind == Account.Kind.BUFFER:
        raise Unprocessable(
            "credits cannot be delivered into a buffer pool", code=ErrorCode.BUFFER_ACCOUNT
        )
    taken, quantity, held = _escrow_take(actor, hold, quantity, recipient=dst, managed=managed)
    h = held[(dst.pk, taken.batch_id)]
    h.tradable += quantity
    h.save(update_fields=["tradable"])
    return _ledger_append(
        type="escrow.deliver",
        actor=actor,
        data={"hold": taken.pk, "to": dst.pk, "quantity": quantity},
    )


# ---- retirement, cancellation, reversal -------------------------------------------------------


@transaction.atomic
def credit_retire(
    *,
    actor: Actor,
    batch: int,
    account: int,
    quantity: int,
    beneficiary: str,
    purpose: str,
    jurisdiction: str,
    reason: str = "",
) -> Retirement:
    quantity = _kg(quantity)
    fields = {
        "beneficiary": validation.text(beneficiary, "beneficiary", max_length=300),
        "purpose": validation.text(purpose, "purpose", max_length=300),
        "jurisdiction": _jurisdiction(jurisdiction),
        "reason": validation.text(reason, "reason", max_length=2000, required=False),
    }
    acc = _sender(actor, account, "account")
    b = _batch(batch)
    h = locks.holdings_lock([(acc.pk, b.pk)])[(acc.pk, b.pk)]
    _check_tradable(acc, b, h.tradable, quantity)
    h.tradable -= quantity
    h.save(update_fields=["tradable"])
    Batch.objects.filter(pk=b.pk).update(retired=F("retired") + _big(quantity))
    seq = _next_seq_locked()
    now = timezone.now()  # one instant for the certificate's year and the entry's time
    certificate = f"BCR-{now:%Y}-{seq:010d}"
    retirement = Retirement.objects.create(
        entry_seq=seq, certificate=certificate, account=acc, batch=b, quantity=quantity, **fields
    )
    _ledger_append(
        type="credit.retire",
        actor=actor,
        data={"retirement": records.retirement_record(retirement)},
        at=now,
    )
    return retirement


@transaction.atomic
def credit_cancel(
    *, actor: Actor, batch: int, account: int, quantity: int, reason: str, destination: str = ""
) -> Cancellation:
    quantity = _kg(quantity)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput(
            "a cancellation needs a reason (e.g. exported to another registry)",
            detail={"reason": "required"},
        )
    reason = validation.text(reason, "reason", max_length=2000)
    destination = validation.text(destination, "destination", max_length=200, required=False)
    acc = _sender(actor, account, "account")
    b = _batch(batch)
    h = locks.holdings_lock([(acc.pk, b.pk)])[(acc.pk, b.pk)]
    _check_tradable(acc, b, h.tradable, quantity)
    h.tradable -= quantity
    h.save(update_fields=["tradable"])
    Batch.objects.filter(pk=b.pk).update(cancelled=F("cancelled") + _big(quantity))
    seq = _next_seq_locked()
    cancellation = Cancellation.objects.create(
        entry_seq=seq,
        account=acc,
        batch=b,
        quantity=quantity,
        reason=reason,
        destination=destination,
    )
    _ledger_append(
        type="credit.cancel",
        actor=actor,
        data={"cancellation": records.cancellation_record(cancellation)},
    )
    return cancellation


@transaction.atomic
def reversal_record(
    *, actor: Actor, project: int, quantity: int, evidence_sha256: str, description: str
) -> Reversal:
    """Record a loss of stored carbon and cancel as much from the registry's buffer pool:
    first from this project's batches, then from the others, oldest batch first."""
    quantity = _kg(quantity)
    evidence = _sha256(evidence_sha256, "evidence_sha256")
    description = validation.text(description, "description", max_length=5000)
    p = locks.project_lock(pid) if (pid := validation.object_id(project)) is not None else None
    if p is None or not actor.may_act_for(p.registry_id):
        raise NotFound(f"project {project} not found")
    buffer = Account.objects.filter(organization_id=p.registry_id, kind=Account.Kind.BUFFER).first()
    if buffer is None:
        raise Unprocessable("the registry has no buffer pool", code=ErrorCode.BUFFER_ACCOUNT)
    candidates = list(
        buffer.holdings.filter(tradable__gt=0).select_related("batch").order_by("batch_id")
    )
    candidates.sort(key=lambda h: (h.batch.project_id != p.pk, h.batch_id))
    plan: list[tuple[int, int]] = []
    left = quantity
    for h in candidates:
        if left == 0:
            break
        take = min(left, h.tradable)
        plan.append((h.batch_id, take))
        left -= take
    if left:
        raise Conflict(
            f"the buffer pool holds {quantity - left} kg, the reversal needs {quantity}",
            code=ErrorCode.INSUFFICIENT_BUFFER,
            detail={"available": quantity - left, "requested": quantity},
        )
    for batch_id, _ in sorted(plan):
        locks.batch_lock(batch_id)
    held = locks.holdings_lock([(buffer.pk, b) for b, _ in plan])
    seq = _next_seq_locked()
    cancelled = []
    for batch_id, take in plan:
        h = held[(buffer.pk, batch_id)]
        if h.tradable < take:  # changed since we planned: the lock now makes it stable
            raise Conflict("the buffer pool changed; try again", code=ErrorCode.INSUFFICIENT_BUFFER)
        h.tradable -= take
        h.save(update_fields=["tradable"])
        Batch.objects.filter(pk=batch_id).update(cancelled=F("cancelled") + _big(take))
        cancellation = Cancellation.objects.create(
            entry_seq=seq,
            account=buffer,
            batch_id=batch_id,
            quantity=take,
            reason="reversal",
            destination="",
        )
        cancelled.append(records.cancellation_record(cancellation))
    reversal = Reversal.objects.create(
        entry_seq=seq,
        project=p,
        quantity=quantity,
        evidence_sha256=evidence,
        description=description,
    )
    _ledger_append(
        type="reversal.record",
        actor=actor,
        data={"reversal": records.reversal_record(reversal), "cancellations": cancelled},
    )
    return reversal


# ---- Merkle tree and checkpoints ------------------------------------------------------------


def tree_extend(*, batch_size: int = 5000) -> int:
    """Hash new entries into the stored Merkle tree. Returns the new tree size."""
    with transaction.atomic():
        head = locks.tree_head_lock()
        frontier = merkle.Frontier.from_nodes(
            head.size, selectors.node_getter(merkle.frontier_node_ids(head.size))
        )
        while True:
            rows = list(
                LedgerEntry.objects.filter(seq__gte=frontier.size)
                .order_by("seq")
                .values_list("seq", "body")[:batch_size]
            )
            if not rows:
                break
            nodes: list[MerkleNode] = []
            for seq, body in rows:
                assert seq == frontier.size, "ledger sequence has a gap"
                for level, index, digest in frontier.append(merkle.leaf_hash(bytes(body))):
                    nodes.append(MerkleNode(level=level, index=index, hash=digest))
            MerkleNode.objects.bulk_create(nodes, batch_size=2000)
        if frontier.size != head.size:
            head.size = frontier.size
            head.save(update_fields=["size"])
        return frontier.size


def ledger_checkpoint_issue() -> Checkpoint | None:
    """Extend the stored tree (it serves proofs) and have the signer sign a checkpoint over
    every committed entry, unless the latest one already covers it. The signer computes what it
    signs from its own state and the new entries only (``ledger/signer.py``); it raises
    ``SignerRefused`` when the database does not extend what it signed. Safe to run twice, or
    in parallel."""
    from .signer import checkpoint_sign_new

    # Up to the size the stored tree reached: entries committed meanwhile wait for the next
    # checkpoint, which the tree will cover too (else its proofs could not be served).
    size = tree_extend()
    checkpoint = checkpoint_sign_new(up_to=size)
    from django.conf import settings

    if checkpoint is not None and settings.LEDGER_WITNESS_POLICY_FILE:
        transaction.on_commit(_witnesses_soon, robust=True)
    return checkpoint


def _witnesses_soon() -> None:
    """After a new checkpoint: have the witnesses cosign it, in the background."""
    from django.conf import settings

    jobs.send(jobs.WITNESS_SUBMIT, queue=settings.LEDGER_WITNESS_QUEUE or None)


# ---- access (not ledger state): API keys, webhook endpoints --------------------------------------


def _secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def apikey_create(
    *,
    organization: int,
    name: str,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Make a key; returns it with its plaintext, which is never stored or shown again."""
    org = _get(Organization, organization)
    if org is None:
        raise NotFound(f"organization {organization} not found")
    scope_list = sorted({validation.choice(s, "scopes", ApiKey.Scope.values) for s in scopes})
    if not scope_list:
        raise InvalidInput("a key needs at least one scope", detail={"scopes": "required"})
    prefix = secrets.token_hex(4)
    secret = f"bck_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        organization=org,
        name=validation.text(name, "name", max_length=200),
        prefix=prefix,
        secret_sha256=_secret_sha256(secret),
        scopes=scope_list,
        expires_at=expires_at,
    )
    return key, secret


def apikey_revoke(*, prefix: str) -> ApiKey:
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None:
        raise NotFound(f"API key {prefix} not found")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
