"""The auditor's subcommands: ``verify``, ``proof`` and ``monitor`` (see ``cli``)."""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .policy import Policy, PolicyError
from .proof import ProofFileError, TlogProof, VerifiedProof, proof_verify
from .quantity import format_tonnes
from .sources import SourceError, open_source
from .verify import Report, UsageError, VerifyOptions, verify

__all__ = ["Progress", "render_report", "run"]

OK, FAILED, USAGE = 0, 1, 2


def _documents(records: dict[str, int]) -> str:
    n = records.get("document", 0)
    return f"{n} document{'' if n == 1 else 's'} attached"


def run(args: argparse.Namespace) -> int:
    try:
        policy = _policy(args)
        if args.command == "verify":
            return _verify(args, policy)
        if args.command == "proof":
            return _proof(args, policy)
        return _monitor(args, policy)
    except (UsageError, PolicyError, SourceError, OSError) as exc:
        print(f"bluecarbon-audit: {exc}", file=sys.stderr)
        return USAGE


def _policy(args: argparse.Namespace) -> Policy:
    if args.policy:
        if args.witness or args.quorum is not None:
            raise UsageError("--policy names the witnesses and the quorum: drop --witness/--quorum")
        policy = Policy.parse(Path(args.policy).read_text(encoding="utf-8"))
        for key in args.key:  # more log keys, e.g. one just rotated in
            policy.logs.append(Policy.from_flags([key], [], 0).logs[0])
        return policy
    return Policy.from_flags(args.key, args.witness, args.quorum)


# ---- verify -----------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (stderr), redrawn at most 5 times a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.drawn < 0.2:
            return
        self.drawn = now
        fraction = done / total if total else 1.0
        bar = "#" * int(30 * fraction)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{bar:<30}] {100 * fraction:5.1f}% {done:,}/{total:,} entries {rate:,.0f}/s"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _verify(args: argparse.Namespace, policy: Policy) -> int:
    source = open_source(args.source)
    show_progress = not args.json and not args.no_progress and sys.stderr.isatty()
    options = VerifyOptions(
        policy=policy,
        origin=args.origin,
        replay=not args.no_replay,
        state_path=Path(args.since) if args.since else None,
        workers=args.workers,
        progress=Progress(sys.stderr) if show_progress else None,
    )
    started = time.monotonic()
    try:
        report = verify(source, options)
    finally:
        source.close()
    elapsed = time.monotonic() - started
    if args.json:
        data = report.to_json()
        data["seconds"] = round(elapsed, 3)
        print(json.dumps(data, indent=2))
    else:
        print(render_report(report, elapsed))
    return OK if report.ok else FAILED


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render_report(report: Report, seconds: float | None = None) -> str:
    """The human report: what was checked, each line a check that passed, then the verdict."""
    lines = [f"source      {report.source}", f"log         {report.origin}"]
    if report.since is not None:
        lines.append(
            f"continued   from the state of a previous run: {report.since['size']} entries"
        )
    if report.failure is None or report.entries:
        took = ""
        if seconds is not None:
            took = f" in {seconds:.1f} s"
            if seconds >= 1 and report.entries:
                took += f", {report.entries / seconds:,.0f} entries/s"
        lines.append(
            f"entries     {report.start:,} .. {report.size - 1:,} checked "
            f"({report.entries:,}{took})"
            if report.entries
            else f"entries     {report.size:,} (none new)"
        )
    checks = []
    if report.failure is None:
        cps = report.checkpoints
        keys = sorted({k for c in cps for k in c.keys})
        checks += [
            f"canonical bytes (RFC 8785), seq and hash chain of {report.entries:,} entries",
            f"{report.tiles:,} hash tiles and {report.bundles:,} entry bundles match the entries"
            + (f" ({report.u32_bundles} in the u32 form)" if report.u32_bundles else ""),
            f"{len(cps)} checkpoint(s) signed by {', '.join(keys)}; every root recomputed",
        ]
        latest = cps[-1]
        if report.quorum != "none":
            checks.append(
                f"witnesses: the latest checkpoint is cosigned by {', '.join(latest.cosigners)} "
                f"(quorum {report.quorum}); {sum(c.quorum_met for c in cps)} of {len(cps)} "
                "checkpoints meet it"
            )
        if report.consistency_proofs:
            checks.append(
                f"{report.consistency_proofs} consistency proof(s) between consecutive "
                "checkpoints" + (" and the one verified before" if report.since else "")
            )
        if report.replayed:
            r = report.registry
            checks.append(
                f"replay: {r['organizations']} organizations, {r['accounts']} accounts, "
                f"{r['projects']} projects ({_documents(report.records)}), {r['batches']} "
                "batches; issued "
                f"{format_tonnes(r['issued_kg'])} t, retired {format_tonnes(r['retired_kg'])} t, "
                f"cancelled {format_tonnes(r['cancelled_kg'])} t; supply invariant holds"
            )
            a = report.auctions
            if a.get("auctions"):
                states = ", ".join(f"{n} {s}" for s, n in a["by_state"].items())
                kinds = [
                    f"{a[key]} {what}"
                    for key, what in (
                        ("bids", "sealed bids"),
                        ("english_bids", "English bids"),
                        ("clock_bids", "clock round bids"),
                    )
                    if a.get(key)
                ]
                checks.append(
                    f"auctions: {a['auctions']} ({states}); {a['recleared']} re-cleared from "
                    f"their revealed keys; " + (", ".join(kinds) or "no bids")
                )
            listed = report.listings
            if listed.get("listings"):
                states = ", ".join(f"{n} {s}" for s, n in listed["by_state"].items())
                checks.append(
                    f"listings: {listed['listings']} ({states}); {listed['purchases']} "
                    "purchases, each take checked against what remained"
                )
        if report.bundle_auctions:
            checks.append(f"{report.bundle_auctions} auction files match the ledger")
    for check in checks:
        lines.append(f"  ok  {check}")
    for note in report.notes:
        lines.append(f"  note  {note}")
    if report.failure is not None:
        lines.append(f"FAILED: {report.failure}")
    else:
        lines.append(
            f"OK: {report.origin} verified at size {report.size:,}, root {_b64(report.root)}"
        )
    return "\n".join(lines)


# ---- proof ------------------------------------------------------------------------------------


def _proof(args: argparse.Namespace, policy: Policy) -> int:
    text = Path(args.file).read_text(encoding="utf-8")
    entry = Path(args.entry).read_bytes() if args.entry else None
    try:
        proof = TlogProof.parse(text)
        verified = proof_verify(proof, policy=policy, entry=entry)
    except ProofFileError as exc:
        if args.json:
            print(json.dumps({"ok": False, "failure": str(exc)}, indent=2))
        else:
            print(f"FAILED: {exc}")
        return FAILED
    if args.json:
        print(json.dumps(_proof_json(verified), indent=2))
    else:
        print(_render_proof(verified, policy))
    return OK


def _describe_entry(verified: VerifiedProof) -> str:
    e = verified.entry
    text = f"{e.type} at {e.time} by {e.actor}"
    retirement = e.data.get("retirement") if e.type == "credit.retire" else None
    if isinstance(retirement, dict):
        try:
            qty = format_tonnes(retirement["quantity"])
        except (KeyError, TypeError, ValueError):
            qty = "?"
        text += (
            f": certificate {retirement.get('certificate')}, {qty} t for "
            f"{retirement.get('beneficiary')}"
        )
    return text


def _render_proof(verified: VerifiedProof, policy: Policy) -> str:
    cp, w = verified.checkpoint, verified.witnessed
    stamps = ", ".join(
        f"{name} at {datetime.fromtimestamp(w.timestamps[name], UTC):%Y-%m-%d %H:%M:%SZ}"
        for name in w.cosigners
    )
    lines = [
        f"OK: entry {verified.entry.seq} is in the log {cp.origin}",
        f"  entry       {_describe_entry(verified)}",
        f"  checkpoint  size {cp.size:,}, root {_b64(cp.root)}",
        f"  signed by   {', '.join(verified.log_keys)}",
        f"  witnesses   {stamps or 'none'} (quorum {policy.describe_quorum()})",
    ]
    return "\n".join(lines)


def _proof_json(verified: VerifiedProof) -> dict[str, Any]:
    cp = verified.checkpoint
    return {
        "ok": True,
        "seq": verified.entry.seq,
        "type": verified.entry.type,
        "time": verified.entry.time,
        "entry": verified.entry_bytes.decode("utf-8"),
        "origin": cp.origin,
        "tree_size": cp.size,
        "root": _b64(cp.root),
        "signed_by": list(verified.log_keys),
        "cosigned_by": {n: verified.witnessed.timestamps[n] for n in verified.witnessed.cosigners},
    }


# ---- monitor ----------------------------------------------------------------------------------


def _monitor(args: argparse.Namespace, policy: Policy) -> int:
    """Poll, verify what is new since the state, and stop with an ALERT on the first failure
    (a rollback, a fork, a bad signature or cosignature, a missed quorum, a bad entry)."""
    state = Path(args.state)
    while True:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            source = open_source(args.url)
        except SourceError as exc:
            print(f"{stamp} unreachable: {exc}", flush=True)
            if args.once:
                return USAGE
            time.sleep(args.interval)
            continue
        options = VerifyOptions(
            policy=policy, origin=args.origin, replay=not args.no_replay, state_path=state
        )
        try:
            report = verify(source, options)
        finally:
            source.close()
        failure = report.failure
        if failure is not None and failure.check == "source":
            print(f"{stamp} unreachable: {failure}", flush=True)
        elif failure is not None:
            print(f"{stamp} ALERT ({failure.check}): {failure}", flush=True)
            return FAILED
        else:
            latest = report.checkpoints[-1]
            witnesses = f", cosigned by {', '.join(latest.cosigners)}" if latest.cosigners else ""
            print(
                f"{stamp} ok: size {report.size:,} (+{report.entries:,}), root "
                f"{_b64(report.root)}{witnesses}",
                flush=True,
            )
        if args.once:
            return OK if failure is None else USAGE
        time.sleep(args.interval)
