"""``bluecarbon-audit trustee ...``: ``init``, ``keys``, ``key``, ``release`` and ``run`` (see
``trustee``).

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
from .trustee import (
    FIND_WINDOW,
    ApiError,
    Event,
    Registry,
    TrusteeDir,
    TrusteeError,
    TrusteeRun,
    b64,
    unb64,
)

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

    key = actions.add_parser(
        "key",
        help="write the private key of one of this trustee's public keys, for the registry "
        "portal's release form (offline: no server)",
    )
    key.add_argument("dir", help="the trustee's directory (from trustee init)")
    key.add_argument(
        "--public-key",
        required=True,
        help="the public key an auction assigns this trustee (base64, as the portal shows it)",
    )
    key.add_argument(
        "--out", help="a new file to write it to (mode 0600, never over a file); default stdout"
    )

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
        if args.action == "key":
            return _key(args)
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


def _key(args: argparse.Namespace) -> int:
    """The private key of ``--public-key`` as the registry's release takes it (standard base64
    of the 32 raw bytes, one line): for a trustee that releases in the portal instead of with
    ``release``. It checks only that the key is one this trustee made; whether the auction has
    closed is the registry's word then, not a witnessed checkpoint's (``release`` checks that)."""
    directory = TrusteeDir(args.dir)
    public = unb64(args.public_key, "--public-key")
    with directory.locked():
        state = directory.read()
        index = state.index_of(public)
        if index is None:
            index = directory.find(public, state.next_index + FIND_WINDOW)
        if index is None:
            print(
                f"bluecarbon-audit: REFUSED (key_not_ours): {args.public_key} is not a key of "
                f"the seed in {args.dir}: nothing written",
                file=sys.stderr,
            )
            return FAILED
        line = b64(directory.private_key(index)) + "\n"
    if args.out is None:
        sys.stdout.write(line)
        return OK
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(line)
    print(
        f"wrote the private key of key {index} to {args.out} (mode 0600); give it to the "
        "registry's release form after the auction's close, then delete the file",
        file=sys.stderr,
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
