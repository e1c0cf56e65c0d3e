"""Trustees: the independent organizations whose keys open an auction's bids after the close.

A trustee registers one-time X25519 public keys (``trustee_keys_register``); it made the key
pairs on its own machine (``bluecarbon-audit trustee``) and the server never holds their private
halves before the close. Scheduling an auction sealed to trustees assigns each of its trustees
its oldest unused key (``assign_keys``); bidders seal one share of each bid's key to each of
them (``bluecarbon_audit.auctions.sealing``). After the close each trustee releases its
auction key (``trustee_release``), which must match the registered public key; once
``threshold`` have, the workers open, clear and settle. Every step is a ledger entry.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from django.db import transaction
from django.utils import timezone

from ledger import services as registry
from ledger import validation
from ledger.actors import Actor
from ledger.core.entry import format_time
from ledger.models import Organization, Role

from . import jobs, locks, records
from .core import sealing
from .exceptions import AuctionErrorCode as Code
from .exceptions import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from .models import MAX_TRUSTEES, Auction, Sealing, TrusteeKey

State = Auction.State
MAX_KEYS_PER_CALL = 100


def _key_bytes(value: object, what: str) -> bytes:
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidInput(
                f"{what} must be standard base64", code=Code.INVALID_KEY, detail={what: "invalid"}
            ) from None
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidInput(
            f"{what} must be a raw 32-byte X25519 key",
            code=Code.INVALID_KEY,
            detail={what: "invalid"},
        )
    return value


def _trustee_org(actor: Actor) -> Organization:
    org = Organization.objects.filter(pk=actor.organization_id or 0).first()
    if org is None or not org.has_role(Role.TRUSTEE):
        raise PermissionDenied("only an organization with the trustee role holds trustee keys")
    return org


# ---- registering keys ----------------------------------------------------------------------


@transaction.atomic
def trustee_keys_register(*, actor: Actor, public_keys: Iterable[object]) -> list[TrusteeKey]:
    """Register one-time public keys of the actor's trustee organization (1 to 100 a call)."""
    org = _trustee_org(actor)
    raw = [_key_bytes(k, "public_keys") for k in public_keys]
    if not 1 <= len(raw) <= MAX_KEYS_PER_CALL:
        raise InvalidInput(
            f"register 1 to {MAX_KEYS_PER_CALL} keys at a time",
            code=Code.INVALID_KEY,
            detail={"public_keys": "count"},
        )
    if len(set(raw)) != len(raw):
        raise InvalidInput(
            "the same public key is listed twice",
            code=Code.INVALID_KEY,
            detail={"public_keys": "duplicate"},
        )
    for key in raw:
        try:
            X25519PublicKey.from_public_bytes(key)
        except ValueError:
            raise InvalidInput(
                "not an X25519 public key", code=Code.INVALID_KEY, detail={"public_keys": "invalid"}
            ) from None
    if TrusteeKey.objects.filter(public_key__in=raw).exists():
        raise Conflict("a public key is already registered", code=Code.KEY_REGISTERED)
    created = TrusteeKey.objects.bulk_create(
        [TrusteeKey(organization=org, public_key=key, entry_seq=-1) for key in raw]
    )
    entry = registry.ledger_append(
        type="trustee.keys",
        actor=actor,
        data={
            "organization": org.pk,
            "keys": [{"key": k.pk, "public_key": records.b64(k.public_key)} for k in created],
        },
    )
    TrusteeKey.objects.filter(pk__in=[k.pk for k in created]).update(entry_seq=entry.seq)
    for k in created:
        k.entry_seq = entry.seq
    return created


# ---- the rules -----------------------------------------------------------------------------


def check_rules(
    sealing_mode: object, trustees: object, threshold: object, release_by: Any, closes_at: Any
) -> tuple[str, list[int], int | None]:
    """The sealing rules of a new auction, checked: (mode, trustees, threshold)."""
    mode = validation.choice(sealing_mode, "sealing", Sealing.values, code=Code.INVALID_RULES)
    if mode == Sealing.OPERATOR_KEY:
        if trustees or threshold is not None or release_by is not None:
            raise InvalidInput(
                "trustees, threshold and release_by are rules of sealing to trustees",
                code=Code.INVALID_RULES,
                detail={"sealing": "operator_key"},
            )
        return mode, [], None
    if (
        not isinstance(trustees, list)
        or not 1 <= len(trustees) <= MAX_TRUSTEES
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in trustees)
        or len(set(trustees)) != len(trustees)
    ):
        raise InvalidInput(
            f"trustees must be 1 to {MAX_TRUSTEES} distinct organization ids",
            code=Code.INVALID_RULES,
            detail={"trustees": "invalid"},
        )
    found = {
        o.pk: o for o in Organization.objects.filter(pk__in=trustees) if o.has_role(Role.TRUSTEE)
    }
    missing = [t for t in trustees if t not in found]
    if missing:
        raise InvalidInput(
            f"organizations {missing} are not trustees",
            code=Code.INVALID_RULES,
            detail={"trustees": "not_trustee"},
        )
    if (
        not isinstance(threshold, int)
        or isinstance(threshold, bool)
        or not 1 <= threshold <= len(trustees)
    ):
        raise InvalidInput(
            f"threshold must be from 1 to the number of trustees ({len(trustees)})",
            code=Code.INVALID_RULES,
            detail={"threshold": "out_of_range"},
        )
    if release_by is None or release_by <= closes_at:
        raise InvalidInput(
            "release_by (the trustees' deadline) must be after the closing time",
            code=Code.INVALID_TIME,
            detail={"release_by": "before_closing"},
        )
    return mode, list(trustees), threshold


def assign_keys(a: Auction) -> list[dict[str, Any]]:
    """At scheduling: each trustee's oldest unused key, in the order of the rules (what the
    auction.schedule entry lists and bidders seal to)."""
    out = []
    for position, org in enumerate(a.trustees, 1):
        key = (
            TrusteeKey.objects.select_for_update()
            .filter(organization_id=org, auction__isnull=True)
            .order_by("pk")
            .first()
        )
        if key is None:
            raise Conflict(
                f"trustee {org} has no unused key registered; it must register keys before the "
                "auction is scheduled",
                code=Code.TRUSTEE_KEYS_EXHAUSTED,
                detail={"trustee": org},
            )
        key.auction, key.position = a, position
        key.save(update_fields=["auction", "position"])
        out.append(
            {
                "position": position,
                "trustee": org,
                "key": key.pk,
                "public_key": records.b64(key.public_key),
            }
        )
    return out


def auction_keys(a: Auction) -> list[TrusteeKey]:
    return list(TrusteeKey.objects.filter(auction=a).order_by("position"))


# ---- releasing -----------------------------------------------------------------------------


@transaction.atomic
def trustee_release(*, actor: Actor, auction: int, private_key: object) -> TrusteeKey:
    """The trustee's auction key, released after the close. It must be the private half of the
    key assigned to this trustee for this auction. Releasing the same key again changes nothing."""
    org = _trustee_org(actor)
    raw = _key_bytes(private_key, "private_key")
    key_id = validation.object_id(auction)
    a = locks.auction_lock(key_id) if key_id else None
    if a is None or not a.by_trustees or org.pk not in a.trustees:
        raise NotFound(f"auction {auction} not found", detail={"auction": "not_found"})
    key = TrusteeKey.objects.select_for_update().get(auction=a, organization=org)
    if sealing.public_key_of(raw) != bytes(key.public_key):
        raise Unprocessable(
            "this is not the private key of the public key registered for this trustee in "
            "this auction",
            code=Code.KEY_MISMATCH,
            detail={"private_key": "mismatch"},
        )
    if key.private_key is not None:
        return key  # the same key: it can only be the same bytes
    if a.state in (State.DRAFT, State.SCHEDULED, State.OPEN):
        raise Conflict(
            f"auction {a.pk} has not closed: a trustee releases its key after the close",
            code=Code.NOT_CLOSED,
            detail={"state": a.state},
        )
    if a.state != State.CLOSING:
        raise Conflict(
            f"auction {a.pk} is {a.state}: its bids are no longer waiting for keys",
            code=Code.WRONG_STATE,
            detail={"state": a.state},
        )
    entry = registry.ledger_append(
        type="auction.key_release",
        actor=actor,
        data={
            "auction": a.pk,
            "position": key.position,
            "trustee": org.pk,
            "key": key.pk,
            "private_key": records.b64(raw),
        },
    )
    key.private_key, key.released_seq = raw, entry.seq
    key.save(update_fields=["private_key", "released_seq"])
    # Only the k-th release moves the auction on (counted under the auction's row lock, so one
    # release is the k-th): each release kicking the opening enqueued every chunk of bids once
    # per release, and two workers opened the same bids (10,000 bids, 2 of 3 trustees: 12,000
    # opened). A lost message is beat's sweep to find.
    if released_count(a) == a.threshold:
        auction_id = a.pk
        transaction.on_commit(lambda: jobs.send(jobs.ADVANCE, auction_id), robust=True)
    return key


def opening_keys(a: Auction) -> dict[int, X25519PrivateKey] | None:
    """The released keys the opening uses: the first ``threshold`` released, in ledger order
    (position -> key), or None while fewer have been released."""
    released = list(
        TrusteeKey.objects.filter(auction=a, private_key__isnull=False).order_by("released_seq")[
            : a.threshold
        ]
    )
    if a.threshold is None or len(released) < a.threshold:
        return None
    return {
        k.position: sealing.load_private_key(bytes(k.private_key))
        for k in released
        if k.position is not None and k.private_key is not None
    }


def released_count(a: Auction) -> int:
    return TrusteeKey.objects.filter(auction=a, private_key__isnull=False).count()


def release_overdue(a: Auction) -> bool:
    """Fewer than the threshold released and the deadline passed: the auction fails."""
    return (
        a.by_trustees
        and a.state == State.CLOSING
        and a.release_by is not None
        and timezone.now() >= a.release_by
        and released_count(a) < (a.threshold or 0)
    )


def overdue_reason(a: Auction) -> str:
    release_by = format_time(a.release_by) if a.release_by else "?"
    return f"trustees released {released_count(a)} of the {a.threshold} keys needed by {release_by}"
