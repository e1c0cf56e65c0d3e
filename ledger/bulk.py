"""Bulk import for registry migration: up to 1,000 operations applied all-or-nothing.

Each operation is validated by the same input serializer as its single endpoint and applied by
the same service, in order, in one transaction: the result is exactly what the single calls
would have produced, or, if any operation is refused, nothing at all."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework import serializers

from . import services
from .actors import Actor
from .exceptions import DomainError, InvalidInput, PermissionDenied

MAX_OPERATIONS = 1000


def _serializers() -> dict[str, tuple[str, type[serializers.Serializer], Any]]:
    from .apis.credits import CancellationCreateApi, RetirementCreateApi, TransferCreateApi
    from .apis.registry import BatchIssueApi

    def issue(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data["buffer_share_bp"] = data.pop("buffer_share")
        batch = services.batch_issue(actor=actor, **data)
        return {"batch": batch.pk, "serial": batch.serial}

    def transfer(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        return {"entry_seq": services.credit_transfer(actor=actor, **data).seq}

    def retire(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        r = services.credit_retire(actor=actor, **data)
        return {"entry_seq": r.entry_seq, "certificate": r.certificate}

    def cancel(actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        return {"entry_seq": services.credit_cancel(actor=actor, **data).entry_seq}

    return {
        "issue": ("issue", BatchIssueApi.InputSerializer, issue),
        "transfer": ("transfer", TransferCreateApi.InputSerializer, transfer),
        "retire": ("retire", RetirementCreateApi.InputSerializer, retire),
        "cancel": ("cancel", CancellationCreateApi.InputSerializer, cancel),
    }


def bulk_apply(
    *, actor: Actor, scopes: frozenset[str], operations: list[Any]
) -> list[dict[str, Any]]:
    """Validate every operation, then apply them in order in one transaction."""
    if not isinstance(operations, list) or not 1 <= len(operations) <= MAX_OPERATIONS:
        raise InvalidInput(
            f"operations must be a list of 1 to {MAX_OPERATIONS} operations",
            detail={"operations": "size"},
        )
    kinds = _serializers()
    plan = []
    for index, op in enumerate(operations):
        kind = op.get("op") if isinstance(op, dict) else None
        if not isinstance(kind, str) or kind not in kinds:
            raise InvalidInput(
                f"operation {index}: op must be one of {', '.join(kinds)}",
                detail={"index": index, "op": "invalid_choice"},
            )
        scope, serializer_class, apply = kinds[kind]
        if scope not in scopes:
            raise PermissionDenied(
                f"operation {index} ({kind}) needs the {scope} scope", detail={"index": index}
            )
        fields = {k: v for k, v in op.items() if k != "op"}
        if kind == "transfer":  # the common case, without a serializer per operation
            plan.append((index, kind, apply, _transfer_fields(index, fields)))
            continue
        serializer = serializer_class(data=fields)
        if not serializer.is_valid():
            raise InvalidInput(
                f"operation {index} ({kind}) is not valid",
                detail={
                    "index": index,
                    "errors": {k: [str(e) for e in v] for k, v in serializer.errors.items()},
                },
            )
        plan.append((index, kind, apply, serializer.validated_data))
    results: list[dict[str, Any]] = []
    with transaction.atomic():
        _lock_everything(plan)
        run: list[tuple[int, dict[str, Any]]] = []
        for step in [*plan, None]:
            if step is not None and step[1] == "transfer":
                run.append((step[0], step[3]))
                continue
            if run:  # consecutive transfers go through the set-based path, in order
                results += _transfers(actor, run)
                run = []
            if step is None:
                break
            index, kind, apply, data = step
            try:
                results.append({"index": index, "op": kind, **apply(actor, data)})
            except DomainError as exc:
                raise _at(exc, index, kind) from None
    return results


def _lock_everything(plan: list[Any]) -> None:
    """Take every row lock the whole request needs, in the order of ``locks.py``, before the
    first operation appends (and so holds the ledger head). Otherwise a later operation would
    lock a holding while holding the head, against a single transfer that holds that holding
    and waits for the head: a deadlock."""
    from . import locks
    from .models import Account, Batch, Project

    def ok(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**62

    projects, batches, pairs = set(), set(), set()
    for _, kind, _, d in plan:
        if kind == "issue" and ok(d.get("project")):
            projects.add(d["project"])
        elif kind in ("transfer", "retire", "cancel") and ok(d.get("batch")):
            batches.add(d["batch"])
            for field in ("sender", "recipient", "account"):
                if ok(d.get(field)):
                    pairs.add((d[field], d["batch"]))
    for pk in sorted(Project.objects.filter(pk__in=projects).values_list("pk", flat=True)):
        locks.project_lock(pk)
    existing_batches = set(Batch.objects.filter(pk__in=batches).values_list("pk", flat=True))
    for pk in sorted(existing_batches):
        locks.batch_lock(pk)
    accounts = set(
        Account.objects.filter(pk__in={a for a, _ in pairs}).values_list("pk", flat=True)
    )
    held = [(a, b) for a, b in pairs if a in accounts and b in existing_batches]
    if held:
        locks.holdings_lock(held)


def _transfer_fields(index: int, fields: dict[str, Any]) -> dict[str, Any]:
    """What ``TransferCreateApi.InputSerializer`` accepts, checked directly."""
    from .core.quantity import QuantityError, parse_tonnes

    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for name in ("batch", "sender", "recipient"):
        value = fields.get(name)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if value is None:
            errors[name] = ["This field is required."]
        elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**62:
            errors[name] = ["A valid integer is required."]
        else:
            out[name] = value
    try:
        out["quantity"] = parse_tonnes(fields.get("quantity"))
    except QuantityError as exc:
        errors["quantity"] = [exc.message]
    if errors:
        raise InvalidInput(
            f"operation {index} (transfer) is not valid", detail={"index": index, "errors": errors}
        )
    return out


def _at(exc: DomainError, index: int, kind: str) -> DomainError:
    # Nothing is applied: the transaction rolls back. Say which operation failed.
    exc.message = f"operation {index} ({kind}): {exc.message}"
    exc.detail = {"index": index, **exc.detail}
    return exc


def _transfers(actor: Actor, run: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """A run of transfers with the same checks, effects and entries as ``credit_transfer``
    called once per operation, in a handful of statements: every account and batch read at
    once, every holding locked at once (in id order), balances checked in order in memory,
    holdings written in one UPDATE, entries appended under one head lock."""
    from django.db import connection
    from django.utils import timezone

    from . import locks
    from .core.entry import TRANSFER_BYTES, encode_entry, entry_hash, format_time
    from .exceptions import ErrorCode, NotFound, Unprocessable
    from .models import Account, Batch

    account_ids = {d[k] for _, d in run for k in ("sender", "recipient")}
    batch_ids = {d["batch"] for _, d in run}
    accounts = {
        a: (k, o)
        for a, k, o in Account.objects.filter(pk__in=account_ids).values_list(
            "pk", "kind", "organization_id"
        )
    }
    batches = set(Batch.objects.filter(pk__in=batch_ids).values_list("pk", flat=True))
    for index, d in run:
        try:
            if d["sender"] == d["recipient"]:
                raise Unprocessable(
                    "sender and recipient are the same account", code=ErrorCode.TRANSFER_TO_SELF
                )
            src, dst = accounts.get(d["sender"]), accounts.get(d["recipient"])
            if src is None or not actor.may_act_for(src[1]):
                raise NotFound(f"sender {d['sender']} not found", detail={"sender": "not_found"})
            if dst is None:
                raise NotFound(
                    f"recipient {d['recipient']} not found", detail={"recipient": "not_found"}
                )
            if src[0] == Account.Kind.BUFFER:
                raise Unprocessable(
                    "buffer-pool credits only leave the pool through a reversal",
                    code=ErrorCode.BUFFER_ACCOUNT,
                )
            if dst[0] == Account.Kind.BUFFER:
                raise Unprocessable(
                    "credits cannot be transferred into a buffer pool",
                    code=ErrorCode.BUFFER_ACCOUNT,
                )
            if d["batch"] not in batches:
                raise NotFound(f"batch {d['batch']} not found", detail={"batch": "not_found"})
        except DomainError as exc:
            raise _at(exc, index, "transfer") from None
    pairs = sorted({(d[k], d["batch"]) for _, d in run for k in ("sender", "recipient")})
    held = locks.holdings_lock(pairs, create=False)
    balance = {pair: h.tradable for pair, h in held.items()}
    for index, d in run:
        out: tuple[int, int] = (d["sender"], d["batch"])
        into: tuple[int, int] = (d["recipient"], d["batch"])
        if balance.get(out, 0) < d["quantity"]:
            try:
                services._check_tradable(
                    Account.objects.get(pk=out[0]),
                    Batch.objects.get(pk=out[1]),
                    balance.get(out, 0),
                    d["quantity"],
                )
            except DomainError as exc:
                raise _at(exc, index, "transfer") from None
        balance[out] -= d["quantity"]
        balance[into] = balance.get(into, 0) + d["quantity"]
    if len(held) < len(pairs):
        held = locks.holdings_lock(pairs)
    for pair, h in held.items():
        h.tradable = balance.get(pair, 0)
    locks.holdings_save(*held.values())

    size, last = locks.ledger_head_lock()
    now = format_time(timezone.now())
    rows, results = [], []
    for offset, (index, d) in enumerate(run):
        seq = size + offset
        body = (
            f'{{"actor":"{actor.label}","data":{{"batch":{d["batch"]},"from":{d["sender"]},'
            f'"quantity":{d["quantity"]},"to":{d["recipient"]}}},"prev":"{last.hex()}",'
            f'"seq":{seq},"time":"{now}","type":"credit.transfer","v":1}}'
        ).encode()
        if TRANSFER_BYTES.fullmatch(body) is None:  # an actor or number outside the template
            body = encode_entry(
                seq=seq,
                prev=last,
                time=now,
                type="credit.transfer",
                actor=actor.label,
                data={
                    "batch": d["batch"],
                    "from": d["sender"],
                    "quantity": d["quantity"],
                    "to": d["recipient"],
                },
            )
        last = entry_hash(body)
        rows.append((seq, body, "credit.transfer", services.entry_mac(seq, last)))
        results.append({"index": index, "op": "transfer", "entry_seq": seq})
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY: one round trip for the whole run (the append-only triggers guard UPDATE,
            # DELETE and TRUNCATE; COPY only inserts). Through the driver's own cursor, so its
            # errors are made Django's here (a deadlock must be an OperationalError to be
            # retried or answered 503, ledger/apis/errors.py).
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
        cursor.execute(
            "UPDATE ledger_ledgerhead SET size = %s, last_hash = %s WHERE id = 1",
            [size + len(rows), last],
        )
    transaction.on_commit(services._checkpoint_soon, robust=True)
    return results
