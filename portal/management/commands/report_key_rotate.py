"""``manage.py report_key_rotate``: start signing verification reports with a new key; reports
signed before keep verifying. Where there is no report key yet, it creates the first one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from portal.reports import REPORT_KEY


class Command(BaseCommand):
    help = (
        "Generate a new verification report key (VERIFICATION_REPORT_KEY_FILE), or the first "
        "one; old verifier keys stay trusted."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not REPORT_KEY.path.exists():
            try:
                new = REPORT_KEY.create()
            except FileExistsError:
                pass  # made meanwhile (a development process generated one): rotate that
            else:
                self.stdout.write(f"created: {REPORT_KEY.path}\nactive:  {new.to_string()}")
                return
        old, new = REPORT_KEY.rotate()
        self.stdout.write(f"retired: {old.to_string()}\nactive:  {new.to_string()}")
