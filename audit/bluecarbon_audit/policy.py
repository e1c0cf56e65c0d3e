"""Which log keys and witnesses a verifier trusts: c2sp.org/tlog-policy.

A policy names the logs (their Ed25519 verifier keys), the witnesses (``cosignature/v1`` keys)
and the quorum: a witness, or a group of k of n members, groups nesting. A checkpoint is valid
under the policy when one of the logs signed it and the quorum cosigned it. The command line's
``--key``, ``--witness`` and ``--quorum K`` make the same object (``Policy.from_flags``).

Pure: parsing and evaluation only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .cosignature import CosignatureError, CosignatureVerifier, cosignatures_in
from .note import NoteError, Verifier

__all__ = ["Group", "Policy", "PolicyError", "Witnessed"]

# tlog-policy §Character set: tab, newline, printable ASCII and any octet with the high bit.
_ALLOWED = re.compile(r"[\t\n\x20-\x7e\x80-\U0010ffff]*")
_THRESHOLD = re.compile(r"[1-9][0-9]*")
NONE = "none"


class PolicyError(ValueError):
    """A policy file, or flags, that tlog-policy does not allow."""


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Witnessed:
    """What the witnesses said of one checkpoint: who cosigned it, and whether that meets the
    quorum."""

    cosigners: tuple[str, ...]  # policy names of the witnesses with a valid cosignature
    timestamps: dict[str, int]
    quorum_met: bool


@dataclass
class Policy:
    logs: list[Verifier] = field(default_factory=list)
    log_urls: dict[str, str] = field(default_factory=dict)  # verifier key -> URL
    witnesses: dict[str, CosignatureVerifier] = field(default_factory=dict)
    witness_urls: dict[str, str] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = NONE

    # ---- building --------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Policy:
        """A tlog-policy file (tlog-policy §Policy file syntax and structure)."""
        if not _ALLOWED.fullmatch(text):
            raise PolicyError("policy file has a control character other than tab or newline")
        policy = cls()
        quorum: str | None = None
        for number, raw in enumerate(text.split("\n"), 1):
            words = raw.replace("\t", " ").split()
            if not words or words[0].startswith("#"):
                continue
            where = f"policy line {number}"
            keyword, args = words[0], words[1:]
            try:
                if keyword == "log" and len(args) in (1, 2):
                    policy._add_log(args[0], args[1] if len(args) == 2 else None)
                elif keyword == "witness" and len(args) in (2, 3):
                    policy._add_witness(args[0], args[1], args[2] if len(args) == 3 else None)
                elif keyword == "group" and len(args) >= 3:
                    policy._add_group(args[0], args[1], args[2:])
                elif keyword == "quorum" and len(args) == 1:
                    if quorum is not None:
                        raise PolicyError("a second quorum line")
                    policy._check_defined(args[0], allow_none=True)
                    quorum = args[0]
                else:
                    raise PolicyError(f"cannot read {raw.strip()!r}")
            except (PolicyError, NoteError) as exc:
                raise PolicyError(f"{where}: {exc}") from None
        if quorum is None:
            raise PolicyError("the policy has no quorum line (use 'quorum none' for none)")
        policy.quorum = quorum
        return policy

    @classmethod
    def from_flags(
        cls, keys: Sequence[str], witnesses: Sequence[str], quorum: int | None
    ) -> Policy:
        """``--key`` (log keys), ``--witness`` (witness keys, named by their key names) and
        ``--quorum K``: K of the witnesses must cosign (default: all of them; 0: none)."""
        policy = cls()
        for key in keys:
            policy._add_log(key, None)
        names = []
        for key in witnesses:
            try:
                verifier = CosignatureVerifier.from_string(key)
            except CosignatureError as exc:
                raise PolicyError(f"--witness {key!r}: {exc}") from None
            policy._add_witness(verifier.name, key, None)
            names.append(verifier.name)
        k = len(names) if quorum is None else quorum
        if not 0 <= k <= len(names):
            raise PolicyError(f"--quorum {k}: there are {len(names)} --witness keys")
        if k:
            policy.groups["witnesses"] = Group("witnesses", k, tuple(names))
            policy.quorum = "witnesses"
        return policy

    def _add_log(self, vkey: str, url: str | None) -> None:
        verifier = Verifier.from_string(vkey)
        if any(v.public_key == verifier.public_key for v in self.logs):
            raise PolicyError(f"log key {vkey} is listed twice")
        self.logs.append(verifier)
        if url:
            self.log_urls[vkey] = url

    def _add_witness(self, name: str, vkey: str, url: str | None) -> None:
        if name == NONE or name in self.witnesses or name in self.groups:
            raise PolicyError(f"the name {name!r} is reserved or already defined")
        try:
            verifier = CosignatureVerifier.from_string(vkey)
        except CosignatureError as exc:
            raise PolicyError(f"witness {name}: {exc}") from None
        if any(w.public_key == verifier.public_key for w in self.witnesses.values()):
            raise PolicyError(f"witness key {vkey} is listed twice")
        self.witnesses[name] = verifier
        if url:
            self.witness_urls[name] = url

    def _add_group(self, name: str, threshold: str, members: Sequence[str]) -> None:
        if name == NONE or name in self.witnesses or name in self.groups:
            raise PolicyError(f"the name {name!r} is reserved or already defined")
        for member in members:
            self._check_defined(member, allow_none=False)
        if len(set(members)) != len(members):
            raise PolicyError(f"group {name} lists a member twice")
        n = len(members)
        if threshold == "all":
            k = n
        elif threshold == "any":
            k = 1
        elif _THRESHOLD.fullmatch(threshold) and 1 <= int(threshold) <= n:
            k = int(threshold)
        else:
            raise PolicyError(f"group {name}: threshold {threshold!r} is not all, any or 1..{n}")
        self.groups[name] = Group(name, k, tuple(members))

    def _check_defined(self, name: str, *, allow_none: bool) -> None:
        if name == NONE:
            if not allow_none:
                raise PolicyError("'none' cannot be a group member")
            return
        if name not in self.witnesses and name not in self.groups:
            raise PolicyError(f"{name!r} is not defined on a line before")

    # ---- using -----------------------------------------------------------------------------

    @property
    def origins(self) -> set[str]:
        """tlog-policy §Defining a log: a log key's name is the log's origin."""
        return {v.name for v in self.logs}

    @property
    def requires_witnesses(self) -> bool:
        return self.quorum != NONE

    def describe_quorum(self) -> str:
        return "none" if self.quorum == NONE else self._describe(self.quorum)

    def _describe(self, name: str) -> str:
        group = self.groups.get(name)
        if group is None:
            return name
        inner = ", ".join(self._describe(m) for m in group.members)
        return f"{group.threshold} of ({inner})"

    def witnessed(self, note: str) -> Witnessed:
        """Check the cosignatures on a checkpoint note by this policy's witnesses (a line by a
        known witness that does not verify raises ``CosignatureError``) and evaluate the
        quorum."""
        by_key = {(v.name, v.key_id): name for name, v in self.witnesses.items()}
        found = cosignatures_in(note, self.witnesses.values()) if self.witnesses else []
        cosigners = {by_key[(c.name, c.key_id)]: c.timestamp for c in found}
        return Witnessed(
            cosigners=tuple(sorted(cosigners)),
            timestamps=cosigners,
            quorum_met=self.quorum == NONE or self._met(self.quorum, set(cosigners)),
        )

    def _met(self, name: str, cosigned: set[str]) -> bool:
        group = self.groups.get(name)
        if group is None:
            return name in cosigned
        return sum(self._met(m, cosigned) for m in group.members) >= group.threshold

    def to_text(self) -> str:
        """The policy as a tlog-policy file."""
        lines = [f"log {v.to_string()}" for v in self.logs]
        lines += [f"witness {name} {v.to_string()}" for name, v in self.witnesses.items()]
        for group in self.groups.values():
            lines.append(f"group {group.name} {group.threshold} {' '.join(group.members)}")
        lines.append(f"quorum {self.quorum}")
        return "\n".join(lines) + "\n"
