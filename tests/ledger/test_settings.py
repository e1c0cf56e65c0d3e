"""Production refuses to start without its secrets; development makes safe defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_check(tmp_path: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "DATABASE_URL",
            "SECRET_KEY",
            "LEDGER_SIGNING_KEY_FILE",
            "LEDGER_ENTRY_KEY_FILE",
            "AUCTION_KEK_FILE",
            "AUCTION_RECEIPT_KEY_FILE",
            "CELERY_BROKER_URL",
            # A developer's shell may let webhooks reach loopback; production refuses that.
            "WEBHOOK_ALLOW_LOOPBACK",
        }
    }
    base.update(BLUECARBON_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, *(command or ("manage.py", "check"))],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_check(tmp_path, BLUECARBON_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def _production(tmp_path: Path) -> dict[str, str]:
    """Everything production needs to start a web process, and no checkpoint key."""
    return dict(
        BLUECARBON_ENV="production",
        SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        LEDGER_ENTRY_KEY_FILE=str(_entry_key(tmp_path)),
        AUCTION_KEK_FILE=str(_kek(tmp_path)),
        AUCTION_RECEIPT_KEY_FILE=str(_receipt_key(tmp_path)),
        REDIS_CACHE_URL="redis://127.0.0.1:6379/9",  # never contacted by `check`
    )


def test_a_web_process_starts_in_production_without_the_checkpoint_key(tmp_path):
    """The checkpoint key lives only where checkpoints are signed."""
    production = _production(tmp_path)
    result = run_check(tmp_path, **production)
    assert result.returncode == 0, result.stderr
    missing = tmp_path / "missing.key"
    result = run_check(tmp_path, **production, LEDGER_SIGNING_KEY_FILE=str(missing))
    assert result.returncode == 0, result.stderr
    assert not missing.exists()


def test_a_worker_refuses_to_start_in_production_without_the_checkpoint_key(tmp_path):
    missing = tmp_path / "missing.key"
    result = run_check(
        tmp_path,
        *("-m", "celery", "-A", "bluecarbon", "worker", "--without-gossip", "--without-mingle"),
        **_production(tmp_path),
        LEDGER_SIGNING_KEY_FILE=str(missing),
    )
    assert result.returncode != 0
    assert f"LEDGER_SIGNING_KEY_FILE {missing} does not exist" in result.stderr
    assert "where checkpoints are signed" in result.stderr
    assert not missing.exists()


def test_production_refuses_to_let_webhooks_reach_loopback(tmp_path):
    """Loopback receivers are for tests and development: in production loopback is the host's
    own Redis, PostgreSQL and /metrics, which a registrant's webhook URL must never reach."""
    production = _production(tmp_path)
    result = run_check(tmp_path, **production, WEBHOOK_ALLOW_LOOPBACK="1")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert (
        "WEBHOOK_ALLOW_LOOPBACK=1 is for tests and local development and is refused when "
        "BLUECARBON_ENV=production"
    ) in result.stderr
    result = run_check(tmp_path, **production, WEBHOOK_ALLOW_LOOPBACK="0")
    assert result.returncode == 0, result.stderr
    # Development still allows it (the tests' own worker runs with it).
    result = run_check(tmp_path, WEBHOOK_ALLOW_LOOPBACK="1")
    assert result.returncode == 0, result.stderr


def _receipt_key(tmp_path: Path) -> Path:
    from ledger.core.note import Signer

    path = tmp_path / "receipt-signing.key"
    if not path.exists():
        path.write_text(Signer.generate("bluecarbon.test/ledger/receipts").to_string() + "\n")
    return path


def test_production_refuses_to_start_without_a_receipt_key(tmp_path):
    production = _production(tmp_path)
    del production["AUCTION_RECEIPT_KEY_FILE"]
    result = run_check(tmp_path, **production)
    assert result.returncode != 0
    assert "AUCTION_RECEIPT_KEY_FILE must be set" in result.stderr
    result = run_check(tmp_path, **production, AUCTION_RECEIPT_KEY_FILE=str(tmp_path / "no.key"))
    assert result.returncode != 0
    assert "no.key does not exist" in result.stderr
    assert not (tmp_path / "no.key").exists()


def _entry_key(tmp_path: Path) -> Path:
    from ledger.entry_auth import create_key

    path = tmp_path / "entry-mac.key"
    if not path.exists():
        create_key(path, since=0)
    return path


def test_production_refuses_to_start_without_an_entry_key(tmp_path):
    production = dict(
        BLUECARBON_ENV="production",
        SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        LEDGER_SIGNING_KEY_FILE=str(_signing_key(tmp_path)),
        AUCTION_KEK_FILE=str(_kek(tmp_path)),
        AUCTION_RECEIPT_KEY_FILE=str(_receipt_key(tmp_path)),
        REDIS_CACHE_URL="redis://127.0.0.1:6379/9",
    )
    result = run_check(tmp_path, **production)
    assert result.returncode != 0
    assert "LEDGER_ENTRY_KEY_FILE must be set" in result.stderr
    result = run_check(tmp_path, **production, LEDGER_ENTRY_KEY_FILE=str(tmp_path / "no.key"))
    assert result.returncode != 0
    assert "no.key does not exist" in result.stderr
    assert not (tmp_path / "no.key").exists()


def _kek(tmp_path: Path) -> Path:
    path = tmp_path / "auction-kek.key"
    path.write_text("11" * 32 + "\n")
    return path


def _signing_key(tmp_path: Path) -> Path:
    from ledger.core.note import Signer

    path = tmp_path / "ledger-signing.key"
    path.write_text(Signer.generate("bluecarbon.test/ledger").to_string() + "\n")
    return path


def test_production_refuses_to_start_without_an_auction_key_encryption_key(tmp_path):
    production = dict(
        BLUECARBON_ENV="production",
        SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        LEDGER_SIGNING_KEY_FILE=str(_signing_key(tmp_path)),
        LEDGER_ENTRY_KEY_FILE=str(_entry_key(tmp_path)),
        AUCTION_RECEIPT_KEY_FILE=str(_receipt_key(tmp_path)),
        REDIS_CACHE_URL="redis://127.0.0.1:6379/9",  # never contacted by `check`
    )
    result = run_check(tmp_path, **production)
    assert result.returncode != 0
    assert "AUCTION_KEK_FILE must be set" in result.stderr
    result = run_check(tmp_path, **production, AUCTION_KEK_FILE=str(tmp_path / "no-kek.key"))
    assert result.returncode != 0
    assert "no-kek.key does not exist" in result.stderr
    assert not (tmp_path / "no-kek.key").exists()
    result = run_check(tmp_path, **production, AUCTION_KEK_FILE=str(_kek(tmp_path)))
    assert result.returncode == 0, result.stderr


def test_development_starts_with_defaults(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr
