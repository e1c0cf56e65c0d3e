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
