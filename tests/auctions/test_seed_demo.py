"""``seed_demo`` loads demo data in development and refuses to in production, where it would
create the superuser ``admin`` with the published demo password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from ledger.entry_auth import create_key
from ledger.models import LedgerEntry, Organization

ROOT = Path(__file__).resolve().parents[2]


def test_it_refuses_to_run_in_production(db, settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="BLUECARBON_ENV=production"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
    assert not Organization.objects.exists() and not LedgerEntry.objects.exists()


def test_the_command_line_refuses_with_bluecarbon_env_production(tmp_path):
    from ledger.core.note import Signer

    key = tmp_path / "ledger-signing.key"
    key.write_text(Signer.generate("bluecarbon.test/ledger").to_string() + "\n")
    kek = tmp_path / "auction-kek.key"
    kek.write_text("11" * 32 + "\n")
    entry_key = tmp_path / "entry-mac.key"
    create_key(entry_key, since=0)
    receipt_key = tmp_path / "receipt-signing.key"
    receipt_key.write_text(Signer.generate("bluecarbon.test/ledger/receipts").to_string() + "\n")
    env = {
        **os.environ,
        "BLUECARBON_ENV": "production",
        "BLUECARBON_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "LEDGER_SIGNING_KEY_FILE": str(key),
        "LEDGER_ENTRY_KEY_FILE": str(entry_key),
        "AUCTION_KEK_FILE": str(kek),
        "AUCTION_RECEIPT_KEY_FILE": str(receipt_key),
        "REDIS_CACHE_URL": "redis://127.0.0.1:6379/9",  # never contacted: refused before
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "seed_demo refuses to run with BLUECARBON_ENV=production" in result.stderr
    assert "demo data loaded" not in result.stdout
