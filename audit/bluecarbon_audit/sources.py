"""Where ``verify`` reads a log from: a log URL, a tile directory, or an export bundle.

All three hold the same files under the same names (c2sp.org/tlog-tiles): ``checkpoint``,
``tile/<L>/<N>[.p/<W>]`` and the entry bundles. An export bundle (``manage.py ledger_export``)
also holds every checkpoint, the verifier keys, the auctions' revealed keys and a manifest of
every file's SHA-256 (``bundle``). Standard library only: urllib for HTTP, tarfile for bundles.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from . import __version__, bundle

__all__ = ["BundleSource", "DirSource", "HttpSource", "Source", "SourceError", "open_source"]


class SourceError(Exception):
    """The source cannot be read (not there, unreachable, not a bundle, a manifest mismatch)."""


class Reader:
    """Reads a log's files by name (None: the source does not have it). Picklable: worker
    processes of ``verify`` read entry bundles and tiles through one of their own."""

    def read(self, name: str) -> bytes | None:
        raise NotImplementedError


class Source(Reader):
    """A log's files by name, and what the source has besides the tiles."""

    description = "source"
    kind = "source"

    def worker_reader(self) -> Reader | None:
        """A reader worker processes can use (tile and bundle files only), or None if only
        this process can read the source."""
        return None

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        """``read`` of each name, in order (sources that can fetch ahead do)."""
        for name in names:
            yield name, self.read(name)

    def checkpoints(self) -> list[str]:
        """Checkpoint notes other than ``checkpoint`` (an export bundle has every one)."""
        return []

    def published_keys(self) -> list[str]:
        """Verifier keys the source itself offers (never trusted: shown so they can be checked
        out of band and pinned)."""
        return []

    def auctions(self) -> list[dict[str, Any]]:
        """The auctions' revealed keys and results (export bundles)."""
        return []

    def finish(self) -> None:
        """Checks that need the whole source read (a bundle's manifest)."""

    def close(self) -> None:
        pass


class DirSource(Source):
    kind = "directory"

    def __init__(self, root: Path) -> None:
        if not (root / "checkpoint").is_file():
            raise SourceError(f"{root} is not a tile directory (it has no checkpoint file)")
        self.root = root
        self.description = f"tile directory {root}"

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"{self.root / name}: {exc}") from None

    def worker_reader(self) -> Reader:
        return self

    def published_keys(self) -> list[str]:
        data = self.read("verifier-keys")
        return data.decode().split() if data else []


class HttpSource(Source):
    """A log served over HTTP(S) at a URL prefix (tlog-tiles §Parameters). Fetches ahead with a
    few threads; gzip-compressed answers are accepted (tlog-tiles §Log entries: clients SHOULD
    ask for gzip)."""

    kind = "url"
    AHEAD = 8

    def __init__(self, prefix: str, timeout: float = 30.0) -> None:
        self.prefix = prefix.rstrip("/")
        self.description = f"log at {self.prefix}/"
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fetch")

    def read(self, name: str) -> bytes | None:
        return _HttpReader(self.prefix, self.timeout).read(name)

    def worker_reader(self) -> Reader:
        return _HttpReader(self.prefix, self.timeout)

    def read_many(self, names: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        pending: list[tuple[str, Future[bytes | None]]] = []
        names = iter(names)
        for name in names:
            pending.append((name, self._pool.submit(self.read, name)))
            if len(pending) >= self.AHEAD:
                break
        while pending:
            name, future = pending.pop(0)
            following = next(names, None)
            if following is not None:
                pending.append((following, self._pool.submit(self.read, following)))
            yield name, future.result()

    def published_keys(self) -> list[str]:
        try:
            data = self.read("verifier-keys")
        except SourceError:
            return []
        return data.decode().split() if data else []

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _HttpReader(Reader):
    def __init__(self, prefix: str, timeout: float) -> None:
        self.prefix = prefix
        self.timeout = timeout

    def read(self, name: str) -> bytes | None:
        url = f"{self.prefix}/{name}"
        if not url.startswith(("http://", "https://")):
            raise SourceError(f"{url}: only http and https URLs are read")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            headers={
                "Accept-Encoding": "gzip, identity",
                "User-Agent": f"bluecarbon-audit/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                data: bytes = response.read()
                if response.headers.get("Content-Encoding", "").lower() == "gzip":
                    data = gzip.decompress(data)
                return data
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise SourceError(f"GET {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"GET {url}: {exc}") from None


class _TarReader(Reader):
    """The log files of a bundle, read in place by offset (no tarfile, no manifest: what
    ``verify`` reads this way it proves by content against the signed checkpoints)."""

    def __init__(self, path: Path, index: dict[str, tuple[int, int]]) -> None:
        self.path = path
        self.index = index
        self._file: IO[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "index": self.index, "_file": None}

    def read(self, name: str) -> bytes | None:
        where = self.index.get(f"{bundle.LOG}/{name}")
        if where is None:
            return None
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open by the worker
        self._file.seek(where[0])
        data = self._file.read(where[1])
        if len(data) != where[1]:
            raise SourceError(f"{self.path}: {name} is truncated")
        return data


class BundleSource(Source):
    """An export bundle (an uncompressed tar, see ``bundle``): files are read in place, each
    hashed and compared with the manifest as it is read; ``finish`` checks the rest."""

    kind = "bundle"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"export bundle {path}"
        try:
            self._tar = tarfile.open(path, "r:")  # noqa: SIM115 (closed by close())
        except tarfile.ReadError as exc:
            raise SourceError(
                f"{path} is not an uncompressed tar ({exc}); decompress it first"
            ) from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in self._tar:
            top, _, name = member.name.partition("/")
            if top != bundle.TOP or not name:
                if member.isdir() and member.name == bundle.TOP:
                    continue
                raise SourceError(f"{path}: {member.name} is outside {bundle.TOP}/")
            if member.isfile():
                if name in self._members:
                    raise SourceError(f"{path}: {name} appears twice")
                self._members[name] = member
            elif not member.isdir():
                raise SourceError(f"{path}: {member.name} is not a regular file")
        manifest = self._raw(bundle.MANIFEST)
        if manifest is None:
            raise SourceError(f"{path} has no {bundle.MANIFEST}")
        try:
            self._manifest = bundle.parse_manifest(manifest.decode())
        except ValueError as exc:
            raise SourceError(f"{path}: {exc}") from None
        unlisted = sorted(set(self._members) - set(self._manifest) - {bundle.MANIFEST})
        if unlisted:
            raise SourceError(f"{path}: {unlisted[0]} is not in the manifest")
        self._checked: set[str] = set()
        self._reader = _TarReader(
            path,
            {
                name: (member.offset_data, member.size)
                for name, member in self._members.items()
                if name.startswith(f"{bundle.LOG}/tile/")
            },
        )
        info = self.read_file(bundle.INFO)
        if info is None:
            raise SourceError(f"{path} has no {bundle.INFO}")
        self.info: dict[str, Any] = json.loads(info)
        if self.info.get("format") != bundle.FORMAT:
            raise SourceError(f"{path} is not a {bundle.FORMAT} bundle")

    def _raw(self, name: str) -> bytes | None:
        member = self._members.get(name)
        if member is None:
            return None
        handle: IO[bytes] | None = self._tar.extractfile(member)
        assert handle is not None
        with handle:
            return handle.read()

    def read_file(self, name: str) -> bytes | None:
        """A file of the bundle by its name in it, checked against the manifest."""
        data = self._raw(name)
        want = self._manifest.get(name)
        if data is None:
            if want is not None:
                raise SourceError(f"{self.path}: {name} is in the manifest but not in the bundle")
            return None
        if hashlib.sha256(data).hexdigest() != want:
            raise SourceError(
                f"{self.path}: {name} does not match its SHA-256 in the manifest "
                "(the file was changed or damaged)"
            )
        self._checked.add(name)
        return data

    def read(self, name: str) -> bytes | None:
        """A file of the log. Hash tiles and entry bundles are read without their digest: ``verify``
        proves them by content against the signed checkpoints, which a digest written by the
        same party that wrote the file cannot add to; every other file is digest-checked."""
        if name.startswith("tile/"):
            return self._reader.read(name)
        return self.read_file(f"{bundle.LOG}/{name}")

    def worker_reader(self) -> Reader:
        return self._reader

    def checkpoints(self) -> list[str]:
        prefix = bundle.CHECKPOINTS + "/"
        names = sorted(
            (n for n in self._members if n.startswith(prefix)),
            key=lambda n: int(n[len(prefix) :]) if n[len(prefix) :].isdigit() else -1,
        )
        notes = []
        for name in names:
            data = self.read_file(name)
            assert data is not None
            notes.append(data.decode("utf-8"))
        return notes

    def published_keys(self) -> list[str]:
        data = self.read_file(bundle.KEYS)
        return data.decode().split() if data else []

    def auctions(self) -> list[dict[str, Any]]:
        prefix = bundle.AUCTIONS + "/"
        found = []
        for name in sorted(n for n in self._members if n.startswith(prefix)):
            data = self.read_file(name)
            assert data is not None
            found.append(json.loads(data))
        return found

    def finish(self) -> None:
        """Every other file listed is there and matches its digest (tiles and bundles: see
        ``read``)."""
        for name in sorted(set(self._manifest) - self._checked):
            if name.startswith(f"{bundle.LOG}/tile/"):
                if name not in self._members:
                    raise SourceError(
                        f"{self.path}: {name} is in the manifest but not in the bundle"
                    )
                continue
            self.read_file(name)

    def close(self) -> None:
        self._tar.close()


def open_source(spec: str) -> Source:
    """A URL (http:// or https://), a tile directory, or an export bundle file."""
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec)
    path = Path(spec)
    if path.is_dir():
        return DirSource(path)
    if path.is_file():
        return BundleSource(path)
    raise SourceError(f"{spec}: no such directory or file (and not an http(s) URL)")
