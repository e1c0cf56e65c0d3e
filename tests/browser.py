"""Debian's Chromium driven by Playwright (which must not download a browser of its own)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
# The network here is closed: without these Chromium keeps dialling out and logging refusals.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser; fails (never skips) when Chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which Django takes for an
    # async context and refuses database calls in; the test code is synchronous all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Django keeps connections per thread and per asyncio context, and while
            # Playwright's loop runs this thread counts as a context of its own: connections
            # opened in it (the tests' flushes) would outlive it and hold sessions on the test
            # database past its teardown.
            connections.close_all()


def page_problems(page: Any) -> list[str]:
    """A list that collects the page's errors and console errors and warnings (a CSP violation
    is one) from now on: a test asserts it is empty at the end."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in {"error", "warning"}
            else None
        ),
    )
    return problems


AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA, and Deque's best practices (landmarks, one h1,
# headings in order, ...): everything axe-core checks except the experimental rules and AAA.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now: ``[{"id", "impact", "help", "nodes":
    [target, ...]}]``, empty when the page passes.

    The vendored axe-core is evaluated through the DevTools protocol (``page.evaluate``), which
    the page's Content-Security-Policy does not govern: ``add_script_tag`` would add an inline
    script the site's CSP rightly refuses, and a context with ``bypass_csp=True`` would also
    hide the CSP violations the tests look for. axe-core itself needs no ``eval``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    result: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
          const r = await axe.run(document, {
            runOnly: {type: "tag", values: tags}, resultTypes: ["violations"],
          });
          return r.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => n.target.join(" ")),
          }));
        }""",
        AXE_TAGS,
    )
    return result


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than its viewport (0 when nothing scrolls
    sideways; a table scrolling inside its own box does not count)."""
    overflow: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return max(overflow, 0)


def overflowing(page: Any, limit: int = 3) -> list[str]:
    """The outermost elements that reach past the viewport's right edge (for the message of a
    test that found the page scrolling sideways), as tag#id.class."""
    found: list[str] = page.evaluate(
        """(limit) => {
          const width = document.documentElement.clientWidth, out = [];
          const walk = (el) => {
            if (out.length >= limit) return;
            const right = el.getBoundingClientRect().right;
            const clips = getComputedStyle(el).overflowX !== "visible";
            if (right > width + 1 && (el.children.length === 0 || clips)) {
              out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                + [...el.classList].map((c) => "." + c).join("")
                + (el.parentElement ? " in " + el.parentElement.tagName.toLowerCase()
                   + [...el.parentElement.classList].map((c) => "." + c).join("") : ""));
              return;
            }
            // What a box that fits clips cannot widen the page (an absolutely positioned
            // descendant whose containing block is outside it can: it is looked at too).
            for (const child of el.children) {
              if (!clips || getComputedStyle(child).position === "absolute") walk(child);
            }
          };
          walk(document.body);
          return out;
        }""",
        limit,
    )
    return found


@contextmanager
def served() -> Iterator[str]:
    """The site on a free port, served by a thread of this process on the committed test
    database (not pytest-django's live_server, whose transaction the thread could not see):
    its base URL."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("localhost", StaticFilesHandler)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://localhost:{thread.port}"
    finally:
        thread.terminate()
        thread.join(timeout=10)
