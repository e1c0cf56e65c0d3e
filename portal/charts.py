"""Server-rendered SVG charts (no script, no library): an auction's demand curve, its price
history and rounds, and the registry's supply and retirements (over time, by ecosystem, by
jurisdiction).

The curve is cumulative counted demand (lots) against price, highest price first: the step
function the clearing walks down until it meets the supply. The supply is a vertical line at
the lots offered; the clearing price a horizontal one."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from ledger.core.quantity import format_money
from portal.templatetags.portal_format import tonnes

W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50


def demand_curve_svg(a, points) -> SafeString:
    supply = a.offered_lots
    max_q = max(supply, points[-1].demand) if points else supply
    prices = (
        [p.price for p in points]
        + [a.reserve]
        + ([a.clearing_price] if a.clearing_price is not None else [])
    )
    lo, hi = min(prices), max(prices)
    span = max(hi - lo, 1)
    lo = max(0, lo - span // 10)
    hi = hi + span // 10

    def x(q: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * q / max(max_q, 1)

    def y(p: int) -> float:
        return TOP + (H - TOP - BOTTOM) * (hi - p) / max(hi - lo, 1)

    # Demand: from (0, highest price) right along each price to its cumulative demand, then
    # down to the next price.
    path, q = [], 0
    for pt in points:
        path.append(f"{x(q):.1f},{y(pt.price):.1f}")
        path.append(f"{x(pt.demand):.1f},{y(pt.price):.1f}")
        q = pt.demand
    # Looked up before the f-strings below: xgettext does not read inside f-strings.
    title = escape(_("Demand curve: cumulative lots against price"))
    supply_label = escape(_("supply"))
    clearing_label = escape(_("clearing price"))
    lots_label = escape(_("lots (cumulative demand)"))
    price_label = escape(_("price per tonne"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" '
        f'role="img" aria-labelledby="chart-title">',
        f'<title id="chart-title">{title}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
    ]
    if path:
        parts.append(f'<polyline class="demand" points="{" ".join(path)}"/>')
    parts.append(
        f'<line class="supply" x1="{x(supply):.1f}" y1="{TOP}" x2="{x(supply):.1f}" '
        f'y2="{H - BOTTOM}"/>'
    )
    parts.append(
        f'<text class="label" x="{x(supply) + 4:.1f}" y="{TOP + 12}">{supply_label} {supply}</text>'
    )
    if a.clearing_price is not None:
        cy = y(a.clearing_price)
        parts.append(
            f'<line class="clearing" x1="{LEFT}" y1="{cy:.1f}" x2="{W - RIGHT}" y2="{cy:.1f}"/>'
        )
        parts.append(
            f'<text class="label" x="{LEFT + 4}" y="{cy - 4:.1f}">{clearing_label} '
            f"{format_money(a.clearing_price, a.currency)}</text>"
        )
    ry = y(a.reserve)
    parts.append(
        f'<line class="reserve" x1="{LEFT}" y1="{ry:.1f}" x2="{W - RIGHT}" y2="{ry:.1f}"/>'
    )
    for p in (lo, hi):
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y(p) + 4:.1f}" text-anchor="end">'
            f"{format_money(p, a.currency)}</text>"
        )
    parts.append(
        f'<text class="tick" x="{W - RIGHT}" y="{H - BOTTOM + 16}" text-anchor="end">{max_q}</text>'
    )
    parts.append(
        f'<text class="axis-title" x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 12}" '
        f'text-anchor="middle">{lots_label}</text>'
    )
    parts.append(
        f'<text class="axis-title" x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">'
        f"{price_label} ({escape(a.currency)})</text>"
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped or numeric)


def price_history_svg(a, points) -> SafeString:
    """An English auction's accepted bids as a step line of the standing price over time:
    ``points`` are (time, price) in ledger order. The start price is a dotted line; each bid
    a dot. The time axis runs from the first bid to the last (the free phase may be days long
    and the bidding minutes: from the opening it would squash every bid into one corner)."""
    title = escape(_("Standing price over time"))
    start_label = escape(_("start price"))
    time_label = escape(_("time of the bid (UTC)"))
    price_label = escape(_("price per tonne"))
    prices = [p for _t, p in points] + [a.reserve]
    lo, hi = min(prices), max(prices)
    span = max(hi - lo, a.tick)
    lo, hi = max(0, lo - span // 10), hi + span // 10
    t0 = points[0][0] if points else None
    t1 = points[-1][0] if points else None
    seconds = max((t1 - t0).total_seconds(), 1.0) if t0 and t1 else 1.0

    def x(t) -> float:
        if t0 is None or len(points) == 1:
            return (LEFT + W - RIGHT) / 2
        return LEFT + (W - LEFT - RIGHT) * (t - t0).total_seconds() / seconds

    def y(p: int) -> float:
        return TOP + (H - TOP - BOTTOM) * (hi - p) / max(hi - lo, 1)

    # Step line: a price stands until the next bid, which lifts it.
    path: list[str] = []
    for i, (t, p) in enumerate(points):
        if i:
            path.append(f"{x(t):.1f},{y(points[i - 1][1]):.1f}")
        path.append(f"{x(t):.1f},{y(p):.1f}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" '
        f'role="img" aria-labelledby="price-chart-title">',
        f'<title id="price-chart-title">{title}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
    ]
    ry = y(a.reserve)
    parts.append(
        f'<line class="reserve" x1="{LEFT}" y1="{ry:.1f}" x2="{W - RIGHT}" y2="{ry:.1f}"/>'
    )
    parts.append(f'<text class="label" x="{LEFT + 4}" y="{ry - 4:.1f}">{start_label}</text>')
    if len(path) > 1:
        parts.append(f'<polyline class="demand" points="{" ".join(path)}"/>')
    for t, p in points[-200:]:  # dots for the last 200 bids; the line carries every one
        parts.append(f'<circle class="bid-dot" cx="{x(t):.1f}" cy="{y(p):.1f}" r="3"/>')
    for p in (lo, hi):
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y(p) + 4:.1f}" text-anchor="end">'
            f"{format_money(p, a.currency)}</text>"
        )
    if t0 is not None and t1 is not None:
        parts.append(
            f'<text class="tick" x="{LEFT}" y="{H - BOTTOM + 16}">{t0:%H:%M:%S}</text>'
            f'<text class="tick" x="{W - RIGHT}" y="{H - BOTTOM + 16}" text-anchor="end">'
            f"{t1:%H:%M:%S}</text>"
        )
    parts.append(
        f'<text class="axis-title" x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 12}" '
        f'text-anchor="middle">{time_label}</text>'
    )
    parts.append(
        f'<text class="axis-title" x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">'
        f"{price_label} ({escape(a.currency)})</text>"
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped or numeric)


def clock_rounds_svg(a, rounds) -> SafeString:
    """A clock auction's rounds: each closed round's aggregate demand (lots, across) at its
    price (up), joined in round order, so the line is the demand curve the clock has revealed
    so far; the supply (the lots offered) is a vertical line, and the clearing price, once
    there is one, a horizontal one. ``rounds`` are (number, price, aggregate) of closed rounds."""
    title = escape(_("Aggregate demand against price, by round"))
    supply_label = escape(_("supply"))
    clearing_label = escape(_("clearing price"))
    lots_label = escape(_("lots demanded in the round"))
    price_label = escape(_("round price per tonne"))
    supply = a.offered_lots
    max_q = max([supply, *(agg for _n, _p, agg in rounds)])
    max_q += max(max_q // 10, 1)
    prices = [p for _n, p, _agg in rounds] + [a.reserve]
    if a.clearing_price is not None:
        prices.append(a.clearing_price)
    lo, hi = min(prices), max(prices)
    span = max(hi - lo, a.tick)
    lo, hi = max(0, lo - span // 10), hi + span // 10

    def x(q: int) -> float:
        return LEFT + (W - LEFT - RIGHT) * q / max(max_q, 1)

    def y(p: int) -> float:
        return TOP + (H - TOP - BOTTOM) * (hi - p) / max(hi - lo, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" '
        f'role="img" aria-labelledby="rounds-chart-title">',
        f'<title id="rounds-chart-title">{title}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
        f'<line class="supply" x1="{x(supply):.1f}" y1="{TOP}" x2="{x(supply):.1f}" '
        f'y2="{H - BOTTOM}"/>',
        f'<text class="label" x="{x(supply) + 4:.1f}" y="{TOP + 12}">'
        f"{supply_label} {supply}</text>",
    ]
    if a.clearing_price is not None:
        cy = y(a.clearing_price)
        parts.append(
            f'<line class="clearing" x1="{LEFT}" y1="{cy:.1f}" x2="{W - RIGHT}" y2="{cy:.1f}"/>'
            f'<text class="label" x="{LEFT + 4}" y="{cy - 4:.1f}">{clearing_label} '
            f"{format_money(a.clearing_price, a.currency)}</text>"
        )
    points = " ".join(f"{x(agg):.1f},{y(p):.1f}" for _n, p, agg in rounds)
    if len(rounds) > 1:
        parts.append(f'<polyline class="demand" points="{points}"/>')
    labelled = len(rounds) <= 12  # beyond that the round numbers would overlap
    for n, p, agg in rounds:
        parts.append(f'<circle class="bid-dot" cx="{x(agg):.1f}" cy="{y(p):.1f}" r="4"/>')
        if labelled:
            parts.append(f'<text class="tick" x="{x(agg) + 6:.1f}" y="{y(p) - 6:.1f}">{n}</text>')
    for p in (lo, hi):
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y(p) + 4:.1f}" text-anchor="end">'
            f"{format_money(p, a.currency)}</text>"
        )
    parts.append(
        f'<text class="tick" x="{LEFT}" y="{H - BOTTOM + 16}">0</text>'
        f'<text class="tick" x="{W - RIGHT}" y="{H - BOTTOM + 16}" text-anchor="end">{max_q}</text>'
        f'<text class="axis-title" x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 12}" '
        f'text-anchor="middle">{lots_label}</text>'
        f'<text class="axis-title" x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">'
        f"{price_label} ({escape(a.currency)})</text>"
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped or numeric)


# ---- the registry's statistics ---------------------------------------------------------------
# Narrower than the auction charts: these are read on phones too, and a 560-wide viewBox keeps
# their labels legible at 390 px. Each chart has a <title> and a <desc>, every bar a <title> of
# its own (a tooltip), and the page puts the same numbers in a table under it.

SW = 560


def _nice_ceiling_tonnes(kg: int) -> int:
    """The axis top, in kg: the smallest 1, 2 or 5 times a power of ten tonnes at or above
    ``kg`` (integers only)."""
    tonnes = max(-(-kg // 1000), 1)
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= tonnes:
                return m * step * 1000
        step *= 10


def _text(x: float, y: float, text: str, cls: str = "tick", anchor: str = "start") -> str:
    return f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{text}</text>'


def timeline_svg(periods, *, chart_id: str = "timeline") -> SafeString:
    """Tonnes issued and retired in each period (``portal.figures.Period``), as pairs of bars
    on one tonnes axis."""
    title = escape(_("Credits issued and retired over time"))
    unit = pgettext("unit of mass", "t")
    t = escape(unit)
    issued_word, retired_word = escape(_("Issued")), escape(pgettext("credits", "Retired"))
    total_issued = sum(p.issued for p in periods)
    total_retired = sum(p.retired for p in periods)
    first, last = (periods[0].label, periods[-1].label) if periods else ("", "")
    desc = escape(
        _(
            "From %(first)s to %(last)s: %(issued)s issued and %(retired)s retired. "
            "The table after the chart lists each period."
        )
        % {
            "first": first,
            "last": last,
            "issued": f"{tonnes(total_issued)} {unit}",
            "retired": f"{tonnes(total_retired)} {unit}",
        }
    )
    h, left, right, top, bottom = 300, 96, 12, 30, 44
    top_kg = _nice_ceiling_tonnes(
        max([p.issued for p in periods] + [p.retired for p in periods] + [1])
    )
    n = max(len(periods), 1)
    slot = (SW - left - right) / n
    bar = max(min(slot * 0.38, 28), 1.5)

    def y(kg: int) -> float:
        return top + (h - top - bottom) * (top_kg - kg) / top_kg

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SW} {h}" class="chart stats" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
        f'<title id="{chart_id}-title">{title}</title>',
        f'<desc id="{chart_id}-desc">{desc}</desc>',
        f'<rect class="key-issued" x="{left}" y="6" width="12" height="12"/>',
        _text(left + 16, 16, issued_word, "label"),
        f'<rect class="key-retired" x="{left + 130}" y="6" width="12" height="12"/>',
        _text(left + 146, 16, retired_word, "label"),
    ]
    for kg in (0, top_kg // 2, top_kg):
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y(kg):.1f}" x2="{SW - right}" y2="{y(kg):.1f}"/>'
        )
        parts.append(_text(left - 6, y(kg) + 4, f"{tonnes(kg)} {t}", anchor="end"))
    # Every label when they fit, else every k-th (and the last), so none overlap.
    every = max(1, -(-n * 72 // (SW - left - right)))
    for i, p in enumerate(periods):
        x0 = left + slot * i + (slot - 2 * bar) / 2
        label = escape(p.label)
        for kind, value, x in (("issued", p.issued, x0), ("retired", p.retired, x0 + bar)):
            word = issued_word if kind == "issued" else retired_word
            parts.append(
                f'<rect class="bar-{kind}" x="{x:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(value):.1f}" data-period="{label}" data-kg="{value}">'
                f"<title>{label}: {word} {tonnes(value)} {t}</title></rect>"
            )
        if i % every == 0 or i == n - 1:
            parts.append(_text(left + slot * (i + 0.5), h - bottom + 16, label, anchor="middle"))
    parts.append(
        f'<line class="axis" x1="{left}" y1="{y(0):.1f}" x2="{SW - right}" y2="{y(0):.1f}"/>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped or numeric)


def composition_svg(rows, *, chart_id: str, title: str, name_of=str) -> SafeString:
    """One horizontal bar per row (``portal.figures.composition``), as long as its issued
    tonnes and split into retired, cancelled and the rest (held, in escrow or in the buffer)."""
    unit = pgettext("unit of mass", "t")
    t = escape(unit)
    words = {
        "retired": escape(pgettext("credits", "Retired")),
        "cancelled": escape(pgettext("credits", "Cancelled")),
        "remaining": escape(_("Not retired")),
    }
    names = [escape(name_of(r["key"])) for r in rows]
    desc = escape(
        _("Issued tonnes of each, split into retired, cancelled and not retired: %(list)s.")
        % {"list": "; ".join(f"{name_of(r['key'])} {tonnes(r['issued'])} {unit}" for r in rows)}
    )
    # Each row's name above its bar, so the bars take the whole width on a phone and a long
    # name ("Macroalgae (seaweed farming)") never runs off the edge.
    row_h, left, right, top = 50, 12, 12, 36
    h = top + row_h * max(len(rows), 1) + 26
    top_kg = _nice_ceiling_tonnes(max([r["issued"] for r in rows] + [1]))
    span = SW - left - right

    def w(kg: int) -> float:
        return span * kg / top_kg

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SW} {h}" class="chart stats" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{desc}</desc>',
    ]
    x = float(left)
    for kind in ("retired", "cancelled", "remaining"):
        parts.append(f'<rect class="key-{kind}" x="{x:.1f}" y="6" width="14" height="14"/>')
        parts.append(_text(x + 20, 19, words[kind], "label"))
        x += 170
    for i, (r, name) in enumerate(zip(rows, names, strict=True)):
        y0 = top + row_h * i
        parts.append(_text(left, y0 + 16, f"{name} · {tonnes(r['issued'])} {t}", "label"))
        x = float(left)
        for kind in ("retired", "cancelled", "remaining"):
            kg = r[kind]
            if kg <= 0:
                continue
            parts.append(
                f'<rect class="bar-{kind}" x="{x:.1f}" y="{y0 + 22}" width="{w(kg):.1f}" '
                f'height="{row_h - 28}" data-kg="{kg}">'
                f"<title>{name}: {words[kind]} {tonnes(kg)} {t}</title></rect>"
            )
            x += w(kg)
    base = top + row_h * max(len(rows), 1)
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>')
    parts.append(_text(left, base + 18, f"0 {t}"))
    parts.append(_text(SW - right, base + 18, f"{tonnes(top_kg)} {t}", anchor="end"))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every interpolated text is escaped or numeric)
