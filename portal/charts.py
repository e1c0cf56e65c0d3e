"""Server-rendered SVG charts (no script, no library): an auction's demand curve.

The curve is cumulative counted demand (lots) against price, highest price first: the step
function the clearing walks down until it meets the supply. The supply is a vertical line at
the lots offered; the clearing price a horizontal one."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from ledger.core.quantity import format_money

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
