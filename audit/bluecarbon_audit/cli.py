"""The ``bluecarbon-audit`` command.

bluecarbon-audit witness keygen --name NAME --out FILE
bluecarbon-audit witness verifier-key --key FILE
bluecarbon-audit witness serve --key FILE --state FILE --log ORIGIN=VERIFIERKEY ...
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from . import __version__
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bluecarbon-audit", description="Independent checks of the Blue Carbon registry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
