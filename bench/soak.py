"""Soak: ``bin/demo`` as a user starts it (the web server, its Celery workers, one with beat,
and the demo's witness, on SQLite and the embedded file-system broker), under paced demo
activity for ``--minutes`` (default 30): API transfers every 0.5 s, sealed bids submitted,
amended and withdrawn in the open Putian auction, short auctions of its own that the workers
must close, clear and settle, retirements whose certificates must get their inclusion proof,
portal pages in both languages for visitors, a bidder and the auditor, the auditor's "verify
now", the public ledger feed, and ``/healthz`` and ``/metrics``.

Not a benchmark: it measures robustness over time, not load, and exits 1 (after its summary)
when anything broke:

* a Celery worker process (a worker, its pool processes, beat) exited, or ``bin/demo``
  announced restarting one, or a worker logged an unrecoverable error;
* the web server, the witness or ``bin/demo`` itself went away;
* any 5xx, or any answer other than the one the request expects, or no answer;
* a verification run stayed queued longer than ``--queued-bound`` (or ran past
  ``--run-bound``); a short auction was not settled within ``--settle-bound`` of its close; a
  retirement's certificate had no inclusion proof after ``--checkpoint-bound``;
* checkpoints stopped: ``/metrics`` reported the oldest unsigned entry older than
  ``--checkpoint-bound``, or ``/healthz`` failed (its checks: database, signer, witnesses,
  checkpoint lag, worker heartbeats) after it had first passed;
* the operations banner (no worker heard from, signer or witness refusals) showed on an
  auditor's page;
* ``manage.py ledger_verify`` on the result failed.

Everything lives in a var directory of its own (``BLUECARBON_VAR_DIR``, a new temporary one by
default, removed after a clean run; kept, and named, after a failed one) on free ports, so a
demo already running in ``var/`` on port 8000 is not touched. ``DATABASE_URL`` and
``CELERY_BROKER_URL`` are ignored: the soak is of the embedded defaults.

    .venv/bin/python bench/soak.py [--minutes 30] [--var-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import _common as common
from bluecarbon_audit.auctions import sealing

from tests.demo import session_processes
from tests.server import free_port

ROOT = common.PROJECT_ROOT
PASSWORD = "bluecarbon-demo"
TRANSFER_KG = "0.001"
# What bin/demo prints when it starts the worker again (after it exited, or after its watchdog
# killed it for silence), and what Celery logs when the worker itself gives up (the
# JSONDecodeError of issue 14) or loses a pool process.
WORKER_DEATHS = re.compile(
    r"bin/demo: the Celery worker (?:exited|\w+ has not been heard from)|Unrecoverable error|"
    r"Process '[^']+' pid:\d+ exited with|WorkerLostError"
)
BANNER = 'id="operations-alerts"'
PROOF = 'id="proof-check"'


# ---- HTTP ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: bytes
    headers: http.client.HTTPMessage | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode(errors="replace")


class Stats:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.failures: list[str] = []
        self.started = time.monotonic()

    def fail(self, what: str) -> None:
        stamp = time.monotonic() - self.started
        self.failures.append(f"[{stamp:7.1f}s] {what}")
        common.log(f"FAILURE: {what}")


class Client:
    """One user agent: its cookies (a signed-in session) or API key, and a language. A fresh
    connection per request, as browsers' short-lived ones are to a development server."""

    def __init__(self, port: int, stats: Stats, *, key: str = "", lang: str = "en") -> None:
        self.port = port
        self.stats = stats
        self.key = key
        self.lang = lang
        self.cookies: dict[str, str] = {}

    def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        expect: Iterable[int] = (200,),
        body: Any = None,
        form: dict[str, str] | None = None,
        lang: str | None = None,
    ) -> Answer | None:
        """The answer, or None after recording a failure (no answer, a 5xx, another status
        than ``expect``)."""
        headers = {"Accept-Language": lang or self.lang}
        data: bytes | None = None
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if method == "POST":
                headers["Idempotency-Key"] = str(uuid.uuid4())
        if form is not None:
            data = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if "csrftoken" in self.cookies:
                headers["X-CSRFToken"] = self.cookies["csrftoken"]
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            answer = Answer(r.status, r.read(), r.msg)
        except (OSError, http.client.HTTPException) as exc:
            self.stats.errors[kind] += 1
            self.stats.fail(f"{kind}: {method} {path}: no answer ({exc!r})")
            return None
        finally:
            conn.close()
        self.stats.latencies[kind].append(time.perf_counter() - started)
        for header in (answer.headers.get_all("Set-Cookie") if answer.headers else None) or []:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        if answer.status not in set(expect):
            self.stats.errors[kind] += 1
            self.stats.fail(
                f"{kind}: {method} {path} answered {answer.status}: {answer.text()[:300]!r}"
            )
            return None
        return answer

    def sign_in(self, username: str) -> None:
        page = self.call("sign-in", "GET", "/account/login/")
        found = page and re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text())
        if not found:
            raise SystemExit(f"no sign-in form for {username}")
        form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": found[1]}
        if self.call("sign-in", "POST", "/account/login/", form=form, expect=(302,)) is None:
            raise SystemExit(f"{username} could not sign in")


def healthy(port: int) -> bool:
    """Whether /healthz answers 200 (every check passes: workers heard from on every queue)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# ---- the demo's processes --------------------------------------------------------------------


class Demo:
    """``bin/demo`` in a session of its own, and the processes it started."""

    def __init__(self, var_dir: Path, port: int, witness_port: int) -> None:
        self.var_dir = var_dir
        self.port = port
        env = dict(os.environ)
        for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SQLITE_PATH"):
            env.pop(name, None)  # the embedded defaults, whatever the caller's shell has
        env.update(
            BLUECARBON_VAR_DIR=str(var_dir),
            PORT=str(port),
            WITNESS_PORT=str(witness_port),
            PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.output = (var_dir / "demo.out").open("ab")
        self.proc = subprocess.Popen(
            [str(ROOT / "bin" / "demo")],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers_seen: set[int] = set()
        self.workers_gone: set[int] = set()
        self.log_offset = 0
        self.deaths: list[str] = []

    def worker_log(self) -> str:
        path = self.var_dir / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check(self, stats: Stats, *, up: bool = True) -> bool:
        """Records what went away since the last call; False once bin/demo itself, the web
        server or the witness is gone. ``up=False`` while it starts: only bin/demo counts."""
        if self.proc.poll() is not None:
            stats.fail(f"bin/demo exited (status {self.proc.returncode})")
            return False
        if not up:
            return True
        procs = session_processes(self.proc.pid)
        # The worker, its pool processes and its beat (Celery may retitle them "[celeryd: ...]").
        workers = {pid for pid, (_, cmd) in procs.items() if "celery" in cmd.lower()}
        for pid in self.workers_seen - workers - self.workers_gone:
            self.workers_gone.add(pid)
            stats.fail(f"a Celery worker process exited (pid {pid})")
        self.workers_seen |= workers
        text = self.worker_log()
        for line in text[self.log_offset :].splitlines():
            # Log records and bin/demo's own lines, not the lines of a traceback under them.
            if line.startswith(("[", "bin/demo:")) and WORKER_DEATHS.search(line):
                self.deaths.append(line)
                stats.fail(f"worker log: {line.strip()[:300]}")
        self.log_offset = len(text)
        for what, needle in (("web server", "runserver"), ("witness", "witness serve")):
            if not any(needle in cmd for _, cmd in procs.values()):
                stats.fail(f"the {what} is not running")
                return False
        if not workers:
            stats.fail("no Celery worker process is running")
        return True

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )

    def stop(self) -> None:
        """TERM to the whole session (bin/demo's trap stops its children), KILL to what is
        left after 30 s."""
        for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and session_processes(self.proc.pid):
                time.sleep(0.2)
                self.proc.poll()
            if not session_processes(self.proc.pid):
                break
        self.proc.wait(timeout=10)
        self.output.close()


# ---- the activity ----------------------------------------------------------------------------


@dataclass
class Org:
    handle: str
    client: Client
    id: int = 0
    account: int = 0
    holdings: dict[str, int] = field(default_factory=dict)  # batch serial -> batch id
    standing: list[int] = field(default_factory=list)  # its bids in the open auction
    turn: int = 0


@dataclass
class Watched:
    """Something that must happen by ``deadline`` (monotonic): ``check`` says whether it has."""

    label: str  # what the summary reports its waits under
    what: str
    deadline: float
    check: Callable[[], bool]
    started: float = field(default_factory=time.monotonic)


class Soak:
    def __init__(self, demo: Demo, args: argparse.Namespace) -> None:
        self.demo = demo
        self.args = args
        self.stats = Stats()
        port = demo.port
        self.anonymous = Client(port, self.stats)
        self.anonymous_zh = Client(port, self.stats, lang="zh-hans")
        self.auditor = Client(port, self.stats)
        self.bidder = Client(port, self.stats, lang="zh-hans")
        self.orgs: dict[str, Org] = {}
        self.watched: list[Watched] = []
        self.counts: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.healthy_once = False
        self.pages: list[tuple[Client, str]] = []
        self.page_turn = 0
        self.transfer_turn = 0
        self.feed_after = -1
        self.putian_auction = 0
        self.trustees: list[int] = []
        self.threshold = 0
        self.verification: int | None = None
        self.checkpoint_sizes: list[int] = []

    # -- setup

    def key_for(self, handle: str, *scopes: str) -> Org:
        flags = [x for s in scopes for x in ("--scope", s)]
        done = self.demo.manage("apikey_create", "--org", handle, "--name", "soak", *flags)
        if done.returncode != 0:
            raise SystemExit(f"apikey_create --org {handle}: {done.stderr}")
        org = Org(handle, Client(self.demo.port, self.stats, key=done.stdout.strip()))
        me = org.client.call("setup", "GET", "/api/v1/organization")
        holdings = org.client.call("setup", "GET", "/api/v1/holdings")
        if me is None or holdings is None:
            raise SystemExit(f"cannot read {handle}'s organization")
        org.id = me.json()["id"]
        org.account = me.json()["accounts"][0]["id"]
        org.holdings = {h["batch_serial"]: h["batch"] for h in holdings.json()["results"]}
        self.orgs[handle] = org
        return org

    def batch(self, org: Org, project_code: str) -> int:
        return next(b for serial, b in org.holdings.items() if f"-{project_code}-" in serial)

    def setup(self) -> None:
        for handle in ("ningbo-energy", "zhejiang-trading", "shenzhen-finance"):
            self.key_for(handle, "read", "transfer", "retire", "bid")
        self.key_for("putian-oyster", "read", "auction")
        self.auditor.sign_in("auditor")
        self.bidder.sign_in("bidder1")
        auctions = self.anonymous.call("setup", "GET", "/api/v1/auctions?state=open")
        assert auctions is not None
        opened = [a for a in auctions.json()["results"] if a["title"].startswith("Putian")]
        if not opened:
            raise SystemExit("the demo data has no open Putian auction")
        self.putian_auction = opened[0]["id"]
        # The soak's own auctions are sealed as the demo's are: 2-of-3 to its demo trustees,
        # whose release bin/demo's DEMO ONLY task performs after each close.
        putian = opened[0]["sealing"]
        self.trustees = [
            t["trustee"] for t in sorted(putian["trustees"], key=lambda t: t["position"])
        ]
        self.threshold = putian["threshold"]
        settled = self.anonymous.call("setup", "GET", "/api/v1/auctions?state=settled")
        assert settled is not None
        done = [a["id"] for a in settled.json()["results"]]
        retirements = self.anonymous.call("setup", "GET", "/registry/retirements/")
        assert retirements is not None
        certificates = re.findall(r"/registry/certificates/([^/\"]+)/", retirements.text())
        a = f"/auctions/{self.putian_auction}/"
        public = [
            "/",
            "/registry/projects/",
            "/registry/projects/CN-FJ-PT-001/",
            "/registry/retirements/",
            "/auctions/",
            a,
            *(f"/auctions/{pk}/" for pk in done[:1]),
            *(f"/registry/certificates/{c}/" for c in certificates[:1]),
            "/api/v1/ledger/checkpoints/latest",
        ]
        audit = [
            "/audit/ledger/",
            "/audit/ledger/1/",
            "/audit/checkpoints/",
            "/audit/verification/",
            *(f"/auctions/{pk}/audit/" for pk in done[:1]),
            "/account/",
        ]
        self.pages = [
            *((self.anonymous, p) for p in public),
            *((self.anonymous_zh, p) for p in public[:6]),
            *((self.auditor, p) for p in audit),
            (self.bidder, "/account/"),
            (self.bidder, a),
            (self.bidder, "/auctions/"),
        ]

    # -- one step of each kind of activity

    def transfer(self) -> None:
        """1 kg of Putian credits from Zhejiang to Shenzhen, and back: the balances stay."""
        z, s = self.orgs["zhejiang-trading"], self.orgs["shenzhen-finance"]
        sender, recipient = (z, s) if self.transfer_turn % 2 == 0 else (s, z)
        body = {
            "batch": self.batch(z, "CN-FJ-PT-001"),
            "sender": sender.account,
            "recipient": recipient.account,
            "quantity": TRANSFER_KG,
        }
        if sender.client.call("transfer", "POST", "/api/v1/transfers", body=body, expect=(201,)):
            self.transfer_turn += 1  # the same direction again after a failure: never overdrawn
            self.counts["transfers"] += 1

    def sealed(self, auction: dict[str, Any], org: Org, price: int, lots: int) -> dict[str, str]:
        """A bid as a bidder's client seals it: to the trustees' keys (the demo's auctions are
        2-of-3) or, for an auction with an operator-held key, to that key."""
        rules = auction["sealing"]
        tiers = [{"price": price, "lots": lots}]
        if rules["mode"] == "trustees":
            ciphertext = sealing.seal_threshold(
                trustee_keys=[
                    base64.b64decode(t["public_key"])
                    for t in sorted(rules["trustees"], key=lambda t: t["position"])
                ],
                threshold=rules["threshold"],
                origin=rules["origin"],
                auction=auction["id"],
                bidder=org.id,
                tiers=tiers,
            )
        else:
            ciphertext = sealing.seal(
                public_key=base64.b64decode(rules["public_key"]),
                origin=rules["origin"],
                auction=auction["id"],
                bidder=org.id,
                tiers=tiers,
            )
        return {"ciphertext": base64.b64encode(ciphertext).decode()}

    def bid(self) -> None:
        """A bidder's turn in the open Putian auction: a new bid while it has fewer than four
        standing, else amend its oldest or withdraw it (never near the 50 a bidder may have)."""
        handles = ("ningbo-energy", "zhejiang-trading", "shenzhen-finance")
        org = self.orgs[handles[self.counts["bid turns"] % len(handles)]]
        self.counts["bid turns"] += 1
        got = self.anonymous.call("auction", "GET", f"/api/v1/auctions/{self.putian_auction}")
        if got is None:
            return
        auction = got.json()
        price, lots = 5000 + 100 * (org.turn % 40), 1 + org.turn % 20
        org.turn += 1
        path = f"/api/v1/auctions/{self.putian_auction}/bids"
        if len(org.standing) < 4:
            body = self.sealed(auction, org, price, lots)
            answer = org.client.call("bid", "POST", path, body=body, expect=(201,))
            if answer is not None:
                org.standing.append(answer.json()["id"])
                self.counts["bids submitted"] += 1
        elif self.counts["bids amended"] <= self.counts["bids withdrawn"]:
            body = self.sealed(auction, org, price, lots)
            if org.client.call("bid", "PUT", f"{path}/{org.standing[0]}", body=body):
                org.standing.append(org.standing.pop(0))
                self.counts["bids amended"] += 1
        else:
            if org.client.call("bid", "DELETE", f"{path}/{org.standing[0]}"):
                org.standing.pop(0)
                self.counts["bids withdrawn"] += 1

    def page(self) -> None:
        client, path = self.pages[self.page_turn % len(self.pages)]
        self.page_turn += 1
        answer = client.call("page", "GET", path)
        if answer is None:
            return
        self.counts["pages"] += 1
        if client is self.auditor and self.healthy_once and BANNER in answer.text():
            alert = answer.text().split(BANNER, 1)[1][:400]
            self.stats.fail(f"the operations banner shows on {path}: {alert!r}")

    def feed(self) -> None:
        """The public ledger feed, followed page by page from the start, and again."""
        path = f"/api/v1/ledger/entries?{urlencode({'after': self.feed_after, 'limit': 100})}"
        answer = self.anonymous.call("feed", "GET", path)
        if answer is None:
            return
        after = answer.json()["next_after"]
        self.feed_after = -1 if after is None else after

    def retire(self) -> None:
        """0.001 t of Zhanjiang credits retired by Shenzhen: its certificate must carry an
        inclusion proof once the next checkpoint is signed."""
        org = self.orgs["shenzhen-finance"]
        body = {
            "batch": self.batch(org, "CN-GD-ZJ-001"),
            "account": org.account,
            "quantity": TRANSFER_KG,
            "beneficiary": "Soak test",
            "purpose": "bench/soak.py",
            "jurisdiction": "CN-GD",
        }
        answer = org.client.call("retire", "POST", "/api/v1/retirements", body=body, expect=(201,))
        if answer is None:
            return
        self.counts["retirements"] += 1
        path = f"/registry/certificates/{answer.json()['certificate']}/"

        def proven() -> bool:
            page = self.anonymous.call("certificate", "GET", path)
            return page is not None and PROOF in page.text()

        self.watch(
            "certificate's proof shown after (s)",
            f"certificate {path} with its proof",
            self.args.checkpoint_bound,
            proven,
        )

    def verify(self) -> None:
        """The auditor presses "verify now" (when no run of ours is still going)."""
        if self.verification is not None:
            return
        answer = self.auditor.call("verify", "POST", "/audit/verification/start", expect=(302,))
        if answer is None or answer.headers is None:
            return
        found = re.search(r"/audit/verification/(\d+)/", answer.headers.get("Location", ""))
        if not found:
            self.stats.fail(f"verify now redirected to {answer.headers.get('Location')!r}")
            return
        pk = int(found[1])
        self.verification = pk
        self.counts["verification runs requested"] += 1
        status_path = f"/audit/verification/{pk}/status"
        state: dict[str, Any] = {"left_queue": None}

        def status() -> str:
            got = self.auditor.call("verify-status", "GET", status_path)
            return got.json()["status"] if got is not None else "unknown"

        def left_queue() -> bool:
            s = status()
            if s == "queued":
                return False
            state["left_queue"] = s
            return True

        def finished() -> bool:
            s = status()
            if s == "failed":
                self.stats.fail(f"verification run {pk} failed: {self.auditor_run(pk)}")
            if s in ("ok", "failed"):
                self.verification = None
                self.counts[f"verification runs {s}"] += 1
                return True
            return False

        self.watch(
            "verification run queued for (s)",
            f"verification run {pk} out of the queue",
            self.args.queued_bound,
            left_queue,
        )
        self.watch(
            "verification run done after (s)",
            f"verification run {pk} finished",
            self.args.run_bound,
            finished,
        )

    def auditor_run(self, pk: int) -> str:
        got = self.auditor.call("verify-status", "GET", f"/audit/verification/{pk}/status")
        return got.text()[:300] if got is not None else "?"

    def auction(self) -> None:
        """A short uniform-price auction of Putian's credits sealed to the demo's trustees, a
        bid from each bidder: the workers must close it, the demo trustees release, and the
        workers open, clear and settle it on their own."""
        seller = self.orgs["putian-oyster"]
        now = dt.datetime.now(dt.UTC)
        closes = now + dt.timedelta(seconds=self.args.auction_seconds)
        n = self.counts["auctions created"] + 1
        rules = {
            "title": f"Soak auction {n}",
            "account": seller.account,
            "batch": self.batch(seller, "CN-FJ-PT-001"),
            "format": "uniform",
            "quantity": "10",
            "lot_size": "1",
            "currency": "CNY",
            "price_tick": "1.00",
            "reserve_price": "30.00",
            "deposit_required": "0",
            "tie_rule": "pro_rata",
            "undersubscribed": "settle",
            "opens_at": now.isoformat(),
            "closes_at": closes.isoformat(),
            "sealing": "trustees",
            "trustees": self.trustees,
            "threshold": self.threshold,
            "release_by": (closes + dt.timedelta(seconds=self.args.settle_bound)).isoformat(),
        }
        made = seller.client.call("auction", "POST", "/api/v1/auctions", body=rules, expect=(201,))
        if made is None:
            return
        pk = made.json()["id"]
        scheduled = seller.client.call("auction", "POST", f"/api/v1/auctions/{pk}/schedule")
        if scheduled is None:
            return
        self.counts["auctions created"] += 1
        auction = scheduled.json()
        for i, handle in enumerate(("ningbo-energy", "zhejiang-trading", "shenzhen-finance")):
            org = self.orgs[handle]
            body = self.sealed(auction, org, 4000 + 500 * i, 3 + i)
            if org.client.call(
                "bid", "POST", f"/api/v1/auctions/{pk}/bids", body=body, expect=(201,)
            ):
                self.counts["bids submitted"] += 1
        close_at = time.monotonic() + (closes - dt.datetime.now(dt.UTC)).total_seconds()

        def settled() -> bool:
            got = self.anonymous.call("auction", "GET", f"/api/v1/auctions/{pk}")
            if got is None or got.json()["state"] != "settled":
                return False
            self.counts["auctions settled"] += 1
            self.durations["auction close to settled (s)"].append(time.monotonic() - close_at)
            return True

        bound = self.args.auction_seconds + self.args.settle_bound
        self.watch("auction created to settled (s)", f"auction {pk} settled", bound, settled)

    def health(self) -> None:
        answer = self.anonymous.call("health", "GET", "/healthz", expect=(200, 503))
        if answer is None:
            return
        if answer.status == 200:
            self.healthy_once = True
        elif self.healthy_once:
            failing = [k for k, v in answer.json()["checks"].items() if not v["ok"]]
            self.stats.fail(f"/healthz is 503 ({', '.join(failing)}): {answer.text()[:400]}")
        metrics = self.anonymous.call("metrics", "GET", "/metrics")
        if metrics is None:
            return
        values = dict(re.findall(r"^(bluecarbon_checkpoint_\w+) (\S+)$", metrics.text(), re.M))
        lag = float(values.get("bluecarbon_checkpoint_lag_seconds", "0"))
        self.checkpoint_sizes.append(int(float(values.get("bluecarbon_checkpoint_size", "0"))))
        self.durations["checkpoint lag (s)"].append(lag)
        if lag > self.args.checkpoint_bound:
            self.stats.fail(f"checkpoints stopped: the oldest unsigned entry waited {lag:.0f} s")

    def watch(self, label: str, what: str, within: float, check: Callable[[], bool]) -> None:
        self.watched.append(Watched(label, what, time.monotonic() + within, check))

    def follow(self) -> None:
        """Everything awaited: done, still in time, or a failure."""
        for w in list(self.watched):
            if w.check():
                self.watched.remove(w)
                self.durations[w.label].append(time.monotonic() - w.started)
            elif time.monotonic() > w.deadline:
                self.watched.remove(w)
                self.stats.fail(
                    f"not in time: {w.what} (waited {time.monotonic() - w.started:.0f} s)"
                )
                if w.what.startswith("verification run"):
                    self.verification = None

    # -- the run

    def run(self, seconds: float) -> None:
        a = self.args
        every: list[tuple[float, Callable[[], None]]] = [
            (a.transfer_interval, self.transfer),
            (a.bid_interval, self.bid),
            (a.page_interval, self.page),
            (5.0, self.feed),
            (a.retire_interval, self.retire),
            (a.verify_interval, self.verify),
            (a.auction_interval, self.auction),
            (10.0, self.health),
            (2.0, self.follow),
        ]
        start = time.monotonic()
        # The first verification and auction early, so that a short run has them too.
        due = [start, start, start, start + 3, start + 5, start + 10, start + 15, start, start + 2]
        last_report = last_check = start
        while time.monotonic() - start < seconds:
            i = min(range(len(every)), key=due.__getitem__)
            wait = due[i] - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.5))
                if time.monotonic() - last_check >= 1.0:
                    last_check = time.monotonic()
                    if not self.demo.check(self.stats):
                        return
                continue
            try:
                every[i][1]()
            except Exception as exc:  # an answer of another shape than the API documents
                self.stats.fail(f"{every[i][1].__name__}: {exc!r}")
            due[i] = max(due[i] + every[i][0], time.monotonic())
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                common.log(
                    f"{(last_report - start) / 60:.0f} min: {dict(self.counts)}, "
                    f"{len(self.stats.failures)} failures"
                )
        # What is still awaited gets its bound, not the soak's end.
        while self.watched:
            self.follow()
            if not self.demo.check(self.stats):
                return
            time.sleep(1.0)


# ---- after the run ---------------------------------------------------------------------------

FINAL_COUNTS = """
import json
from auctions.models import Auction
from ledger.models import Checkpoint, LedgerHead
from portal.models import VerificationRun
print(json.dumps({
    "ledger entries at the end": LedgerHead.objects.get(pk=1).size,
    "checkpoints signed during the run": Checkpoint.objects.filter(created_at__gte=%r).count(),
    "verification runs not ok": VerificationRun.objects.exclude(status="ok").count(),
    "soak auctions not settled": Auction.objects.filter(title__startswith="Soak")
    .exclude(state="settled")
    .count(),
}))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def summary(soak: Soak, final: dict[str, Any], minutes: float) -> str:
    stats = soak.stats
    rows = [
        (
            kind,
            len(lat),
            stats.errors[kind],
            f"{percentile(lat, 0.5) * 1000:.0f}",
            f"{percentile(lat, 0.99) * 1000:.0f}",
            f"{max(lat, default=0) * 1000:.0f}",
        )
        for kind, lat in sorted(stats.latencies.items())
    ]
    lines = [
        f"soak of bin/demo (SQLite, embedded file-system broker): {minutes:.1f} min",
        common.table(["requests", "n", "errors", "p50 ms", "p99 ms", "max ms"], rows),
        "",
        f"worker processes exited: {len(soak.demo.workers_gone)} "
        f"(of {len(soak.demo.workers_seen)} seen); worker restarts and deaths logged: "
        f"{len(soak.demo.deaths)}",
    ]
    lines += [f"{k}: {v}" for k, v in sorted(soak.counts.items()) if k != "bid turns"]
    lines += [f"{k}: {v}" for k, v in final.items()]
    for what, values in sorted(soak.durations.items()):
        lines.append(
            f"{what}: n {len(values)}, p50 {percentile(values, 0.5):.1f}, max {max(values):.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--var-dir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the var directory")
    parser.add_argument("--transfer-interval", type=float, default=0.5, metavar="S")
    parser.add_argument("--bid-interval", type=float, default=5.0, metavar="S")
    parser.add_argument("--page-interval", type=float, default=2.0, metavar="S")
    parser.add_argument("--retire-interval", type=float, default=60.0, metavar="S")
    parser.add_argument("--verify-interval", type=float, default=120.0, metavar="S")
    parser.add_argument("--auction-interval", type=float, default=300.0, metavar="S")
    parser.add_argument(
        "--auction-seconds", type=float, default=40.0, help="a short auction's bidding time"
    )
    parser.add_argument("--queued-bound", type=float, default=60.0, metavar="S")
    parser.add_argument("--run-bound", type=float, default=300.0, metavar="S")
    parser.add_argument("--settle-bound", type=float, default=60.0, metavar="S")
    parser.add_argument("--checkpoint-bound", type=float, default=60.0, metavar="S")
    parser.add_argument(
        "--ready-bound", type=float, default=300.0, help="for bin/demo to come up healthy"
    )
    args = parser.parse_args()

    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="bluecarbon-soak-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    port, witness_port = free_port(), free_port()
    while witness_port == port:
        witness_port = free_port()
    common.log(f"bin/demo on port {port} (witness {witness_port}), var directory {var_dir}")
    started_at = dt.datetime.now(dt.UTC)
    demo = Demo(var_dir, port, witness_port)
    soak = Soak(demo, args)
    final: dict[str, Any] = {}
    ran = 0.0
    try:
        deadline = time.monotonic() + args.ready_bound
        while not healthy(port):
            if not demo.check(soak.stats, up=False):
                break
            if time.monotonic() > deadline:
                soak.stats.fail(f"bin/demo was not healthy within {args.ready_bound:.0f} s")
                break
            time.sleep(2)
        if not soak.stats.failures:
            soak.healthy_once = True
            soak.setup()
            common.log(f"demo up; soaking for {args.minutes:g} min")
            began = time.monotonic()
            soak.run(args.minutes * 60)
            ran = time.monotonic() - began
            demo.check(soak.stats)
    finally:
        demo.stop()
    verified = demo.manage("ledger_verify", "--no-progress")
    if verified.returncode != 0:
        soak.stats.fail(f"ledger_verify failed: {(verified.stdout + verified.stderr)[-600:]}")
    counted = demo.manage(
        "shell", "-v", "0", "--no-imports", "-c", FINAL_COUNTS % started_at.isoformat()
    )
    if counted.returncode == 0:
        final = json.loads(counted.stdout.strip().splitlines()[-1])
        for what in ("verification runs not ok", "soak auctions not settled"):
            if final[what]:
                soak.stats.fail(f"in the database at the end: {what}: {final[what]}")
    else:
        soak.stats.fail(f"could not count the results: {counted.stderr[-600:]}")
    final["ledger_verify"] = "ok" if verified.returncode == 0 else "FAILED"
    print(summary(soak, final, ran / 60))
    if soak.stats.failures:
        # Alike failures counted together (numbers aside), then the first ones in full.
        kinds = Counter(re.sub(r"\d+", "N", f.split("] ", 1)[1])[:90] for f in soak.stats.failures)
        print(f"\nFAILED: {len(soak.stats.failures)} failures")
        print("\n".join(f"{n:6d} x {kind}" for kind, n in kinds.most_common()))
        print("the first 30:")
        print("\n".join(soak.stats.failures[:30]))
        print(f"logs kept in {var_dir} (demo.out, worker.log, witness.log)")
        return 1
    print("\nOK: no worker exit, no 5xx, every run, auction and checkpoint in time")
    if not args.keep and not args.var_dir:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
