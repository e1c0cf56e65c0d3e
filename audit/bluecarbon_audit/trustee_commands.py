"""``bluecarbon-audit trustee ...``: ``init``, ``keys``, ``release`` and ``run`` (see ``trustee``).

Exit status: 0 done (released, released before, or no longer needed), 1 a check refused the
release or something failed (named on the output), 2 a usage problem (flags, the directory, an
API key that acts for another organization), 3 (``release``) not yet: the auction has not
closed, or no checkpoint the witness policy accepts includes its close.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from .policy import Policy, PolicyError
from .trustee import ApiError, Event, Registry, TrusteeDir, TrusteeError, TrusteeRun

__all__ = ["add_parser", "run"]

OK, FAILED, USAGE, NOT_YET = 0, 1, 2, 3
API_KEY_ENV = "BLUECARBON_API_KEY"


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    trust_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``trustee`` command group; ``trust_flags`` adds ``--key/--witness/--quorum``."""
    trustee = commands.add_parser(
        "trustee",
        help="a trustee's keys, and their release after an auction's witnessed close",
        description="Makes a trustee's one-time auction keys from one secret seed, registers "
        "them, and releases the key of an auction only once a checkpoint the witness policy "
        "accepts includes the auction's close, and only a key the trustee made.",
    )
    actions = trustee.add_subparsers(dest="action", required=True)

    init = actions.add_parser("init", help="make DIR/seed (mode 0600) and DIR/state.json")
    init.add_argument("dir", help="the trustee's directory (created if missing)")
    init.add_argument("--json", action="store_true")

    def server_flags(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dir", help="the trustee's directory (from trustee init)")
        parser.add_argument(
            "--server", required=True, help="the registry, https://host or https://host/api/v1"
        )
        parser.add_argument(
            "--api-key",
            default=os.environ.get(API_KEY_ENV),
            help=f"an API key with the trustee scope (default: ${API_KEY_ENV})",
        )
        parser.add_argument("--json", action="store_true", help="JSON lines, one per event")

    keys = actions.add_parser("keys", help="derive and register the next --count keys")
    server_flags(keys)
    keys.add_argument("--count", type=int, default=20, help="how many (default 20)")

    release = actions.add_parser(
        "release", help="release the key of one auction, once it is safe to"
    )
    server_flags(release)
    release.add_argument("--auction", type=int, required=True, help="the auction's id")
    trust_flags(release)

    loop = actions.add_parser(
        "run", help="keep keys registered and release for every auction, once it is safe to"
    )
    server_flags(loop)
    trust_flags(loop)
    loop.add_argument("--interval", type=float, default=30.0, help="seconds between passes")
    loop.add_argument("--once", action="store_true", help="one pass, then exit")
    loop.add_argument(
        "--min-free", type=int, default=5, help="unused keys to keep registered (default 5)"
    )
    loop.add_argument(
        "--count", type=int, default=20, help="keys to register when below --min-free"
    )


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print(event: Event, args: argparse.Namespace, *, stamp: bool = False) -> None:
    if args.json:
        data = event.to_json()
        if stamp:
            data = {"time": _stamp(), **data}
        print(json.dumps(data), flush=True)
        return
    label = event.kind.upper() if event.bad else event.kind
    if event.code and event.bad:
        label += f" ({event.code})"
    where = f" auction {event.auction}" if event.auction is not None else ""
    print(f"{_stamp() + ' ' if stamp else ''}{label}{where}: {event.message}", flush=True)


def _release_policy(args: argparse.Namespace) -> Policy:
    from .commands import _policy  # verify's own reading of the trust flags

    policy = _policy(args)
    if not policy.logs:
        raise PolicyError("no log key: pass --key (the registry's verifier key, pinned)")
    if not policy.requires_witnesses:
        raise PolicyError(
            "a trustee releases only on a checkpoint its witnesses cosigned: pass --witness "
            "(and --quorum), or a --policy with a quorum"
        )
    return policy


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "init":
            return _init(args)
        if not args.api_key:
            raise TrusteeError(f"no API key: pass --api-key or set ${API_KEY_ENV}")
        policy = _release_policy(args) if args.action in ("release", "run") else None
        directory = TrusteeDir(args.dir)
        with directory.locked():
            registry = Registry(args.server, args.api_key)
            trustee = TrusteeRun(directory, registry, policy, getattr(args, "origin", None))
            if args.action == "keys":
                for event in trustee.register(args.count):
                    _print(event, args)
                return OK
            if args.action == "release":
                event = trustee.release(args.auction)
                _print(event, args)
                if event.kind == "waiting":
                    return NOT_YET
                return FAILED if event.bad else OK
            return _loop(trustee, args)
    except (TrusteeError, PolicyError, OSError) as exc:
        print(f"bluecarbon-audit: {exc}", file=sys.stderr)
        return USAGE
    except ApiError as exc:
        print(f"bluecarbon-audit: FAILED ({exc.code}): {exc}", file=sys.stderr)
        return FAILED


def _init(args: argparse.Namespace) -> int:
    try:
        directory = TrusteeDir.init(args.dir)
    except FileExistsError:
        print(
            f"bluecarbon-audit: {args.dir} holds a trustee already; not making a new seed over "
            "it (its keys are derived from the one there)",
            file=sys.stderr,
        )
        return FAILED
    if args.json:
        print(json.dumps({"seed": str(directory.seed_path), "state": str(directory.state_path)}))
    else:
        print(
            f"made {directory.seed_path} (mode 0600: every key of this trustee is derived from "
            f"it; back it up offline) and {directory.state_path}"
        )
    return OK


def _loop(trustee: TrusteeRun, args: argparse.Namespace) -> int:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                events = trustee.run_pass(min_free=args.min_free, count=args.count)
            except ApiError as exc:
                events = [Event("failed", str(exc), code=exc.code)]
            for event in events:
                _print(event, args, stamp=True)
            if args.once:
                return FAILED if any(e.bad for e in events) else OK
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return OK
