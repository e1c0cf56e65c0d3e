"""The embedded broker for the one-command demo and the default test run: kombu's file-system
transport, with each message written whole.

kombu creates a message file under its final name and then writes into it, so a consumer
polling the folder can move it away and read it empty; the worker then dies on a
``JSONDecodeError`` in its consumer loop (seen after minutes of demo traffic, and as a CI flake).
Here a message is written under a name no consumer matches and renamed into place, which on one
file system is atomic: a consumer sees the whole message or nothing.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu calls it with keyword arguments too (virtual/base.py), which its stubs omit.
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # Consumers take files whose name after the first dot is "<queue>.msg": not this one.
        partial = os.path.join(self.data_folder_out, f"~{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(message)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
