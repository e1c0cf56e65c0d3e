"""``python -m bluecarbon.serve [granian options] APP``: Granian, refusing an occupied port.

Granian binds every listener with ``SO_REUSEPORT`` (on Linux each worker process binds its own
and the kernel spreads connections among them) and has no option to turn that off (2.8.7). So
a second server started on a port another one holds binds it too, says "Listening", and from
then on receives a share of the connections: an old release and a new one answer side by side,
and nothing reports it. Before handing its arguments to Granian unchanged, this binds the
address once without ``SO_REUSEPORT``, which fails on a port anything is listening on.

What is left: two servers started within the same fraction of a second can both pass the check
before either listens. Start one server per address (a process manager, a systemd unit)."""

from __future__ import annotations

import errno
import socket
import sys

from granian.cli import cli


def port_check(host: str, port: int) -> None:
    """Exit with a message if something is listening on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As Granian binds, but for SO_REUSEPORT: a server that has just stopped (its closed
        # connections in TIME_WAIT) does not count, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # not ours to judge: Granian reports it when it binds
            raise SystemExit(
                f"bluecarbon.serve: {host}:{port} is already in use (another server is "
                "listening on it); stop it or choose another --port"
            ) from None


def main(argv: list[str]) -> None:
    # Granian's own parsing (its options, defaults and GRANIAN_* variables), without acting on
    # it: --help, --version and mistakes are left to the real run below.
    with cli.make_context(
        "granian", list(argv), auto_envvar_prefix="GRANIAN", resilient_parsing=True
    ) as ctx:
        host, port, uds = ctx.params.get("host"), ctx.params.get("port"), ctx.params.get("uds")
    if uds is None and host and port:
        port_check(str(host), int(port))
    cli.main(args=list(argv), prog_name="granian", auto_envvar_prefix="GRANIAN")


if __name__ == "__main__":
    main(sys.argv[1:])
