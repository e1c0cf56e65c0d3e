"""The ``bluecarbon-audit`` command.

bluecarbon-audit verify SOURCE --key VKEY [--witness VKEY ... --quorum K] [--since STATE]
bluecarbon-audit proof FILE --key VKEY [--witness VKEY ... --quorum K] [--entry FILE]
bluecarbon-audit monitor URL --key VKEY --state FILE [--interval SECONDS] [--once]
bluecarbon-audit witness keygen --name NAME --out FILE
bluecarbon-audit witness verifier-key --key FILE
bluecarbon-audit witness serve --key FILE --state FILE --log ORIGIN=VERIFIERKEY ...
bluecarbon-audit trustee init DIR
bluecarbon-audit trustee keys DIR --server URL --api-key KEY [--count N]
bluecarbon-audit trustee release DIR --server URL --api-key KEY --auction ID <trust flags>
bluecarbon-audit trustee run DIR --server URL --api-key KEY <trust flags> [--once]

Exit status: 0 verified, 1 a check failed (the first failure is printed), 2 a usage problem
(no key given, a source that cannot be opened).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from . import __version__, commands, trustee_commands
from .cosignature import Cosigner
from .note import NoteError
from .witness import (
    WitnessServer,
    WitnessState,
    load_logs_file,
    logs_of,
    parse_log_flag,
    read_key_file,
    write_key_file,
)


def _trust_flags(parser: argparse.ArgumentParser) -> None:
    trust = parser.add_argument_group(
        "trust (c2sp.org/tlog-policy): keys pinned out of band, never taken from the source"
    )
    trust.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="VKEY",
        help="a log verifier key, name+hash+base64 (repeat for rotated keys)",
    )
    trust.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="VKEY",
        help="a witness's cosignature/v1 verifier key (repeat for more witnesses)",
    )
    trust.add_argument(
        "--quorum",
        type=int,
        metavar="K",
        help="how many of the --witness keys must cosign (default: all of them)",
    )
    trust.add_argument(
        "--policy", metavar="FILE", help="a tlog-policy file instead of --key/--witness/--quorum"
    )
    trust.add_argument("--origin", help="the log's origin line (default: the name of its key)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bluecarbon-audit", description="Independent checks of the Blue Carbon registry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser(
        "verify",
        help="verify a whole log: a URL, a tile directory or an export bundle",
        description="Checks every entry's canonical bytes, the hash chain, every tile, every "
        "checkpoint's signature, root and witness cosignatures, the consistency of consecutive "
        "checkpoints, and replays the registry and its auctions.",
    )
    verify.add_argument("source", help="log URL prefix, tile directory, or export bundle (.tar)")
    _trust_flags(verify)
    verify.add_argument(
        "--since",
        metavar="STATE",
        help="continue from the state a previous run saved in STATE (and detect a rollback "
        "or fork against it); the new state is saved there after success",
    )
    verify.add_argument(
        "--no-replay", action="store_true", help="integrity only: no registry or auction replay"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.add_argument(
        "--workers", type=int, help="scan processes (default: one per CPU for large logs)"
    )

    proof = commands.add_parser(
        "proof",
        help="verify a c2sp.org/tlog-proof file offline",
        description="Verifies that the entry a proof file carries (or --entry) is in the log: "
        "the checkpoint's signature, its witness cosignatures and the inclusion proof.",
    )
    proof.add_argument("file", help="the .tlog-proof file")
    _trust_flags(proof)
    proof.add_argument("--entry", metavar="FILE", help="the entry's exact bytes, out of band")
    proof.add_argument("--json", action="store_true")

    monitor = commands.add_parser(
        "monitor",
        help="poll a log and alert on a rollback, a fork, or a checkpoint the policy rejects",
    )
    monitor.add_argument("url", help="the log's URL prefix (or a tile directory)")
    _trust_flags(monitor)
    monitor.add_argument("--state", required=True, help="the monitor's own state file")
    monitor.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    monitor.add_argument("--once", action="store_true", help="poll once and exit")
    monitor.add_argument("--no-replay", action="store_true")

    witness = commands.add_parser("witness", help="a C2SP tlog-witness (c2sp.org/tlog-witness)")
    actions = witness.add_subparsers(dest="action", required=True)

    keygen = actions.add_parser(
        "keygen", help="write a new witness key file (mode 0600) and print its verifier key"
    )
    keygen.add_argument("--name", required=True, help="witness name, e.g. witness.example/w1")
    keygen.add_argument("--out", required=True, help="key file to create (never overwritten)")

    vkey = actions.add_parser("verifier-key", help="print the verifier key of a key file")
    vkey.add_argument("--key", required=True)

    serve = actions.add_parser("serve", help="serve add-checkpoint over HTTP")
    serve.add_argument("--key", required=True, help="witness key file (from keygen)")
    serve.add_argument("--state", required=True, help="state file (created if missing)")
    serve.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="ORIGIN=VERIFIERKEY",
        help="a log to witness and one of its keys (repeat for more logs or keys)",
    )
    serve.add_argument(
        "--logs-file", help="file of '<origin> <verifier key>' lines, in addition to --log"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    serve.add_argument("--prefix", default="", help="URL path prefix, e.g. /witness")
    serve.add_argument("--quiet", action="store_true", help="do not log requests to stderr")

    trustee_commands.add_parser(commands, _trust_flags)
    return parser


def _keygen(args: argparse.Namespace) -> int:
    cosigner = Cosigner.generate(args.name)
    try:
        write_key_file(args.out, cosigner)
    except FileExistsError:
        print(f"bluecarbon-audit: {args.out} exists; not overwriting a key", file=sys.stderr)
        return 1
    print(cosigner.verifier().to_string())
    return 0


def _serve(args: argparse.Namespace) -> int:
    pairs = [parse_log_flag(flag) for flag in args.log]
    if args.logs_file:
        pairs += load_logs_file(args.logs_file)
    if not pairs:
        print("bluecarbon-audit: no log to witness (--log or --logs-file)", file=sys.stderr)
        return 2
    server = WitnessServer(
        (args.host, args.port),
        cosigner=read_key_file(args.key),
        logs=logs_of(pairs),
        state=WitnessState(args.state),
        prefix=args.prefix,
        quiet=args.quiet,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # The first line on stdout is the address; bluecarbon_audit.testing reads it.
    print(f"listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("verify", "proof", "monitor"):
        return commands.run(args)
    if args.command == "trustee":
        return trustee_commands.run(args)
    try:
        if args.action == "keygen":
            return _keygen(args)
        if args.action == "verifier-key":
            print(read_key_file(args.key).verifier().to_string())
            return 0
        return _serve(args)
    except (NoteError, ValueError, OSError, RuntimeError) as exc:
        print(f"bluecarbon-audit: {exc}", file=sys.stderr)
        return 1
