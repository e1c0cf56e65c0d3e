"""The tamper drill (``manage.py ledger_tamper_drill``): each attack of docs/threat-model.md made
on a scratch copy of the live database, and what catches it.

``drill_run`` copies the live database (``ledger/scratch.py``; the live one is only read) and
plays, on the copy, the parties the threat model counts on:

* the log's checkpoint signer, with its own state (``ledger/signer.py``) initialised from the
  copy's latest checkpoint and a temporary signing key of its own, trusted beside the live
  keys: the live signing key is never read, and nothing is signed over the live database;
* two witnesses (``python -m bluecarbon_audit witness serve`` on loopback, unless
  ``with_witnesses`` is false) that cosign the copy's latest checkpoints, and a policy that
  needs both;
* an auditor who verified the untouched copy on their own machine, kept that run's state file
  and pinned the verifier keys of that moment.

Then, for each attack (``ledger/drill_attacks.py`` and each app's ``drill`` module), on a fresh
copy of the untouched copy (``CREATE DATABASE ... TEMPLATE``) and with every state file put back
as it was: the attack, then each detection mechanism in turn (``MECHANISMS``). The auditor's
three run without the signer's state, as they would elsewhere; the witnesses are asked before
the signer runs again, so that each sees the attacker's work and not the signer's repairs.

Each attack names the mechanisms the threat model claims detect it; the drill passes when every
claimed one did, and when nothing fires on the untouched copy. Attacks nothing claims are made
all the same and reported as they come out.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluecarbon_audit.testing import start_witness
from django.apps import apps
from django.conf import settings
from django.db import connection

from . import drill_attacks, scratch, services, signer, witnesses
from .core.note import Signer, Verifier
from .drill_attacks import Attack, Scene
from .models import Checkpoint, LedgerHead, MerkleNode, TreeHead
from .signing import trusted_verifiers
from .verify import VerificationError, verify_ledger

MECHANISMS: dict[str, str] = {
    "verify": "ledger_verify from the database, trusting the operator's verifier-keys file",
    "pinned": "ledger_verify trusting only keys pinned out of band (--only-key --verifier-key)",
    "monitor": "ledger_verify --since-checkpoint from the state file an auditor kept of an "
    "earlier run, on their own machine (--state-file)",
    "signer-state": "ledger_verify where the signer runs: the signer's own state of what it signed",
    "signer": "the checkpoint signer's next run: it signs only what extends its own state",
    "witnesses": "the latest checkpoint submitted to the witnesses (C2SP tlog-witness), and "
    "ledger_verify --require-witnesses with their policy",
}

WITNESSES = ("drill-w1", "drill-w2")
WITNESSED_CHECKPOINTS = 3  # how many of the latest checkpoints the drill's witnesses cosign

# What the signer and the witness client log as ERROR when they refuse: in the drill, refusing
# is the point, and an operator's log alerts must not fire for a scratch copy.
_QUIET = ("ledger.signer", "ledger.witnesses")


class DrillError(Exception):
    """The drill could not run (the message says why); nothing was attacked."""


@dataclass
class Finding:
    mechanism: str
    detected: bool
    message: str
    error: bool = False  # the mechanism failed to run: neither a detection nor a pass


@dataclass
class Row:
    attack: str
    title: str
    who: str
    claimed: tuple[str, ...]
    gap: str = ""
    change: str = ""
    skipped: str | None = None
    control: bool = False  # the untouched copy: nothing may fire
    findings: list[Finding] = field(default_factory=list)

    @property
    def by(self) -> list[str]:
        return [f.mechanism for f in self.findings if f.detected]

    @property
    def detected(self) -> bool:
        return bool(self.by)

    @property
    def where(self) -> str:
        return next((f.message for f in self.findings if f.detected), "")

    @property
    def missed(self) -> list[str]:
        """Claimed mechanisms that ran and did not detect it."""
        ran = {f.mechanism: f for f in self.findings}
        return [m for m in self.claimed if m in ran and not ran[m].detected]

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        if self.control:
            return not self.detected and not any(f.error for f in self.findings)
        return not self.missed

    def to_json(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "title": self.title,
            "who": self.who,
            "claimed": list(self.claimed),
            "gap": self.gap,
            "change": self.change,
            "skipped": self.skipped,
            "detected": self.detected,
            "by": self.by,
            "where": self.where,
            "ok": self.ok,
            "findings": [f.__dict__ for f in self.findings],
        }


@dataclass
class Report:
    database: str
    entries: int = 0
    checkpoints: int = 0
    witnesses: int = 0
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    live_untouched: bool | None = None
    scratch_prefix: str = ""  # every scratch database's name starts with it
    scratch_left: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(r.ok for r in self.rows)
            and self.live_untouched is not False
            and not self.scratch_left
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "witnesses": self.witnesses,
            "mechanisms": MECHANISMS,
            "rows": [r.to_json() for r in self.rows],
            "notes": self.notes,
            "live_untouched": self.live_untouched,
            "scratch_prefix": self.scratch_prefix,
            "scratch_left": self.scratch_left,
            "ok": self.ok,
        }


def attacks() -> list[Attack]:
    """The ledger's attacks, then each app's (the ``ATTACKS`` of its ``drill`` module)."""
    found = list(drill_attacks.ATTACKS)
    for config in apps.get_app_configs():
        name = f"{config.name}.drill"
        if config.name != "ledger" and importlib.util.find_spec(name) is not None:
            found += importlib.import_module(name).ATTACKS
    return found


# ---- the mechanisms ---------------------------------------------------------------------------


@contextlib.contextmanager
def _settings(**values: Any) -> Iterator[None]:
    """Settings changed while the drill works, put back after."""
    saved = {name: getattr(settings, name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


@dataclass
class _Stage:
    """The drill's files (the signer's state, the auditor's, the witnesses', the keys file),
    each with the untouched copy's version, put back before every attack."""

    scene: Scene
    auditor_state: Path
    nowhere: Path  # the signer's state on an auditor's machine: none
    policy_file: Path | None = None
    witness_states: list[Path] = field(default_factory=list)

    def _files(self) -> list[Path]:
        s = self.scene
        return [s.signer_state, s.keys_file, self.auditor_state, *self.witness_states]

    def keep(self) -> None:
        for path in self._files():
            shutil.copy2(path, path.with_name(path.name + ".untouched"))

    def restore(self) -> None:
        for path in self._files():
            tmp = path.with_name(path.name + ".restoring")
            shutil.copy2(path.with_name(path.name + ".untouched"), tmp)
            os.replace(tmp, path)  # a witness reads its state file whole, at each request


def _verifying(mechanism: str, run: Callable[[], object]) -> Finding:
    try:
        run()
    except VerificationError as exc:
        return Finding(mechanism, True, str(exc))
    except Exception as exc:  # a crash is neither a detection nor a pass
        return Finding(mechanism, False, f"{type(exc).__name__}: {exc}", error=True)
    return Finding(mechanism, False, "verifies")


def _detect(stage: _Stage) -> list[Finding]:
    scene = stage.scene
    found: dict[str, Finding] = {}
    with _settings(LEDGER_SIGNER_STATE_FILE=str(stage.nowhere)):
        found["verify"] = _verifying("verify", lambda: verify_ledger(verifiers=trusted_verifiers()))
        found["pinned"] = _verifying("pinned", lambda: verify_ledger(verifiers=scene.pinned))
        run = stage.auditor_state.with_name("auditor-run.json")
        shutil.copy2(stage.auditor_state, run)
        found["monitor"] = _verifying(
            "monitor",
            lambda: verify_ledger(verifiers=scene.pinned, state_file=run, since_checkpoint=True),
        )
    with _settings(LEDGER_SIGNER_STATE_FILE=str(scene.signer_state)):
        found["signer-state"] = _verifying(
            "signer-state", lambda: verify_ledger(verifiers=trusted_verifiers())
        )
    if stage.policy_file is not None:
        found["witnesses"] = _witness_run(stage, verified=not found["verify"].detected)
    with _settings(LEDGER_SIGNER_STATE_FILE=str(scene.signer_state)):
        found["signer"] = _signer_run()
    return [found[m] for m in MECHANISMS if m in found]


def _signer_run() -> Finding:
    state = signer.state_read()
    assert state is not None
    had_its_checkpoint = Checkpoint.objects.filter(size=state.size).exists()
    try:
        signed = signer.checkpoint_sign_new()
    except signer.SignerRefused as exc:
        return Finding("signer", True, f"refused to sign: {exc}")
    except Exception as exc:
        return Finding("signer", False, f"{type(exc).__name__}: {exc}", error=True)
    said = f"signed a checkpoint of size {signed.size}" if signed else "nothing new to sign"
    if not had_its_checkpoint and Checkpoint.objects.filter(size=state.size).exists():
        said = f"put its checkpoint of size {state.size} back; {said}"
    return Finding("signer", False, said)


def _witness_run(stage: _Stage, *, verified: bool) -> Finding:
    """The latest checkpoint submitted to the witnesses (what the log's submission task does
    after each checkpoint); then, if they cosigned, whether a verifier that requires their
    quorum accepts the ledger. ``verified``: whether ledger_verify passes without the policy
    (when it fails, the policy is never reached: that is not the witnesses' detection)."""
    assert stage.policy_file is not None
    with _settings(
        LEDGER_WITNESS_POLICY_FILE=str(stage.policy_file),
        LEDGER_SIGNER_STATE_FILE=str(stage.nowhere),
    ):
        latest = Checkpoint.objects.order_by("-size").values_list("size", flat=True).first()
        try:
            outcomes = witnesses.checkpoint_witness()
        except Exception as exc:
            return Finding("witnesses", False, f"{type(exc).__name__}: {exc}", error=True)
        refusals = [
            f"{o.witness} refused checkpoint {latest}: {o.detail}"
            if o.status == "refused"
            else f"{o.witness} has cosigned a larger tree than checkpoint {latest}: {o.detail}"
            for o in outcomes
            if o.status in ("refused", "ahead")
        ]
        if refusals:
            return Finding("witnesses", True, "; ".join(refusals))
        if any(o.status == "unreachable" for o in outcomes):
            detail = "; ".join(f"{o.witness}: {o.detail}" for o in outcomes)
            return Finding("witnesses", False, f"unreachable: {detail}", error=True)
        statuses = ", ".join(f"{o.witness} {o.status}" for o in outcomes)
        if latest is None:
            statuses = "no checkpoint to submit"
        if not verified:
            return Finding("witnesses", False, f"{statuses} (ledger_verify fails before them)")
        required = _verifying(
            "witnesses",
            lambda: verify_ledger(
                verifiers=trusted_verifiers(),
                witness_policy=witnesses.policy(),
                require_witnesses=True,
            ),
        )
        if not required.detected and not required.error:
            required.message = f"{statuses}; ledger_verify --require-witnesses passes"
        return required


# ---- the run ------------------------------------------------------------------------------------


def _live_keys() -> list[str]:
    """The verifier keys the live system trusts, read without touching its key files."""
    keys: list[str] = []
    path = Path(settings.LEDGER_VERIFIER_KEYS_FILE)
    if path.exists():
        keys += path.read_text().split()
    key_file = Path(settings.LEDGER_SIGNING_KEY_FILE)
    if key_file.exists():
        with contextlib.suppress(OSError, ValueError):
            keys.append(Signer.from_string(key_file.read_text().strip()).verifier().to_string())
    return list(dict.fromkeys(keys))


def _live_fingerprint() -> tuple[int, bytes, int, int]:
    head = LedgerHead.objects.filter(pk=1).first()
    return (
        head.size if head else 0,
        bytes(head.last_hash) if head else b"",
        Checkpoint.objects.count(),
        MerkleNode.objects.count(),
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, before, strict=True):
            lg.disabled = was


def drill_run(
    *,
    with_witnesses: bool = True,
    only: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Copy the live database, make each attack on a fresh copy of the copy, and report what
    caught it. The live database is only read; every scratch database, witness process and
    temporary file is gone at the end."""
    say = progress or (lambda message: None)
    if connection.vendor != "postgresql":
        raise DrillError(
            "the tamper drill runs on PostgreSQL only: it copies the database and lifts its "
            "append-only triggers, as the insider it plays would"
        )
    available = attacks()
    unknown = set(only or []) - {a.id for a in available}
    if unknown:
        raise DrillError(f"no such attack: {', '.join(sorted(unknown))}")
    chosen = [drill_attacks.NOTHING, *(a for a in available if not only or a.id in only)]
    server = scratch.Server()
    report = Report(database=server.live, scratch_prefix=server.prefix)
    before = _live_fingerprint()
    live_keys = _live_keys()
    directory = Path(tempfile.mkdtemp(prefix="bluecarbon-drill-"))
    processes: list[Any] = []
    cancel = threading.Event()
    try:
        base = server.create(server.name("base"))
        say(f"scratch database {base}: migrating")
        scratch.migrate(base)
        say(f"copying {server.live} into {base}")
        not_copied = scratch.copy_live_into(base)
        if not_copied:
            report.notes.append(f"tables not made by migrations, not copied: {not_copied}")

        def run() -> None:
            with (
                _quiet(),
                _settings(
                    LEDGER_SIGNING_KEY_FILE=directory / "keys" / "log.key",
                    LEDGER_VERIFIER_KEYS_FILE=directory / "keys" / "verifier-keys.txt",
                    LEDGER_WITNESS_POLICY_FILE="",
                    # Worker processes would open their own connections, not this thread's.
                    LEDGER_VERIFY_WORKERS=0,
                ),
            ):
                stage = _set_stage(base, directory, live_keys, with_witnesses, processes, report)
                for attack in chosen:
                    if cancel.is_set():
                        raise DrillError("interrupted")
                    say(f"attack: {attack.id}")
                    report.rows.append(_attack_row(server, base, stage, attack))

        scratch.in_thread(run, cancel=cancel)
    finally:
        for process in processes:
            process.stop()
        server.drop_all()
        report.scratch_left = server.remaining()
        shutil.rmtree(directory, ignore_errors=True)
    report.live_untouched = _live_fingerprint() == before
    return report


def _set_stage(
    base: str,
    directory: Path,
    live_keys: list[str],
    with_witnesses: bool,
    processes: list[Any],
    report: Report,
) -> _Stage:
    """On the untouched copy: the log's key and the signer's state, the witnesses, the auditor's
    run; their files kept, to be put back before each attack."""
    key_file = Path(settings.LEDGER_SIGNING_KEY_FILE)
    key_file.parent.mkdir(mode=0o700)
    log_key = Signer.generate(settings.LEDGER_ORIGIN)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(log_key.to_string() + "\n")
    trusted = [*live_keys, log_key.verifier().to_string()]
    keys_file = Path(settings.LEDGER_VERIFIER_KEYS_FILE)
    keys_file.write_text("".join(k + "\n" for k in trusted))
    scene = Scene(
        log_key=log_key,
        keys_file=keys_file,
        signer_state=directory / "signer-state.json",
        pinned=[Verifier.from_string(k) for k in trusted],
    )
    stage = _Stage(
        scene=scene,
        auditor_state=directory / "auditor-state.json",
        nowhere=directory / "no-signer-on-this-machine.json",
    )
    with scratch.using(base), _settings(LEDGER_SIGNER_STATE_FILE=str(scene.signer_state)):
        services.tree_extend()
        latest = Checkpoint.objects.order_by("-size").first()
        try:
            signer.signer_initialise(
                scene.signer_state, latest.note if latest else None, development=latest is None
            )
            signer.checkpoint_sign_new()  # the entries after the latest checkpoint
        except signer.SignerRefused as exc:
            raise DrillError(f"the copy's checkpoints cannot start a signer: {exc}") from None
        services.tree_extend()
        scene.size = LedgerHead.objects.get(pk=1).size
        if scene.size < 8:
            raise DrillError(f"the ledger has {scene.size} entries; the drill needs 8 or more")
        scene.tree = TreeHead.objects.get(pk=1).size
        scene.checkpoint = Checkpoint.objects.order_by("-size").values_list("size", flat=True)[0]
        report.entries, report.checkpoints = scene.size, Checkpoint.objects.count()
        if with_witnesses:
            _witnesses_start(stage, directory, trusted, processes)
            report.witnesses = len(processes)
        with _settings(LEDGER_SIGNER_STATE_FILE=str(stage.nowhere)):
            try:
                verify_ledger(verifiers=scene.pinned, state_file=stage.auditor_state)
            except VerificationError as exc:
                raise DrillError(f"the untouched copy does not verify: {exc}") from None
    stage.keep()
    return stage


def _witnesses_start(
    stage: _Stage, directory: Path, trusted: list[str], processes: list[Any]
) -> None:
    lines = []
    for name in WITNESSES:
        w = start_witness(
            directory / "witnesses" / name,
            f"drill.localhost/{name}",
            {settings.LEDGER_ORIGIN: trusted},
        )
        processes.append(w)
        stage.witness_states.append(w.state_file)
        lines.append(f"witness {name} {w.verifier_key} {w.url}\n")
    policy = directory / "witness-policy.txt"
    policy.write_text("".join(lines) + f"group both all {' '.join(WITNESSES)}\nquorum both\n")
    stage.policy_file = policy
    with _settings(LEDGER_WITNESS_POLICY_FILE=str(policy)):
        for checkpoint in list(Checkpoint.objects.order_by("-size")[:WITNESSED_CHECKPOINTS])[::-1]:
            failed = [o for o in witnesses.checkpoint_witness(checkpoint) if o.status != "cosigned"]
            if failed:
                raise DrillError(
                    f"the drill's witnesses did not cosign checkpoint {checkpoint.size}: "
                    + "; ".join(f"{o.witness} {o.status} {o.detail}" for o in failed)
                )


def _attack_row(server: scratch.Server, base: str, stage: _Stage, attack: Attack) -> Row:
    row = Row(
        attack=attack.id,
        title=attack.title,
        who=attack.who,
        claimed=attack.claimed,
        gap=attack.gap,
        control=attack is drill_attacks.NOTHING,
    )
    with scratch.using(base):
        plan = attack.plan(stage.scene)
    if isinstance(plan, str):
        row.skipped = plan
        return row
    stage.restore()
    copy = server.create(server.name(attack.id.replace("-", "_")), template=base)
    try:
        with scratch.using(copy):
            row.change = plan(stage.scene)
            row.findings = _detect(stage)
    finally:
        server.drop(copy)
    return row


# ---- the table ---------------------------------------------------------------------------------


def report_text(report: Report, *, details: bool = False, width: int = 100) -> str:
    """The drill's table: attack, detected, by which mechanisms, where (in the first one's
    words). ``details``: what each attack changed and what every mechanism said."""
    lines = [
        f"tamper drill on a scratch copy of {report.database}: {report.entries} entries, "
        f"{report.checkpoints} checkpoint(s), {report.witnesses} witness(es)",
        "",
    ]
    header = ("attack", "detected", "by", "where")
    rows = []
    for r in report.rows:
        if r.skipped is not None:
            rows.append((r.attack, "skipped", "", r.skipped))
            continue
        detected = ("yes" if r.detected else "no") + ("" if r.ok else " !")
        rows.append((r.attack, detected, ", ".join(r.by), _cut(r.where, width)))
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(3)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    if details:
        for r in report.rows:
            if r.skipped is not None:
                continue
            lines += ["", f"{r.attack} ({r.who}): {r.change}"]
            for f in r.findings:
                mark = "DETECTED" if f.detected else "error" if f.error else "-"
                lines.append(f"  {f.mechanism:<13} {mark:<9} {f.message}")
    lines.append("")
    for r in report.rows:
        for f in r.findings:
            if f.error:
                lines.append(f"error: {r.attack}: {f.mechanism}: {f.message}")
        if r.missed:
            lines.append(f"MISSED: {r.attack}: claimed for {', '.join(r.missed)}, not detected")
        if r.control and r.detected:
            lines.append(f"FALSE ALARM: the untouched copy set off {', '.join(r.by)}")
    lines += [f"note: {note}" for note in report.notes]
    if report.live_untouched is False:
        lines.append("THE LIVE DATABASE CHANGED during the drill")
    if report.scratch_left:
        lines.append(f"scratch databases left behind: {', '.join(report.scratch_left)}")
    claimed = [r for r in report.rows if r.claimed and r.skipped is None]
    unclaimed = [r.attack for r in report.rows if not r.claimed and not r.control]
    lines.append(
        ("OK" if report.ok else "FAILED")
        + f": {sum(not r.missed for r in claimed)} of {len(claimed)} attacks detected by every "
        "mechanism the threat model names"
        + (f"; not claimed: {', '.join(unclaimed)}" if unclaimed else "")
    )
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
