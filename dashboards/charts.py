"""Small charts drawn on the server as inline SVG: nothing to download, nothing fetched by the
browser, readable without JavaScript. Every text that comes from data is escaped."""

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:
    from dashboards.figures import Tally

RESPONSE_COLOR = "#2f5bd3"
RESOLUTION_COLOR = "#1f8a4c"
OPEN_COLOR = "#2f5bd3"
DONE_COLOR = "#9ac7a8"
GRID_COLOR = "#d9dde4"
TEXT_COLOR = "#5d6778"


def _svg(width: int, height: int, label: str, body: list[str], testid: str) -> SafeString:
    # Safe: every piece of data in `body` went through escape().
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}" data-testid="{testid}" '
        f'font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def trend_chart(
    weeks: Sequence[tuple[date, "Tally"]], width: int = 760, height: int = 260
) -> SafeString:
    """Lines of response and resolution % met per week; `weeks` is [(monday, tally)]. A week
    without a decided timer leaves a gap in its line."""
    left, right, top, bottom = 40, 28, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    count = len(weeks)

    def x(i: int) -> float:
        return left + (plot_w / 2 if count == 1 else plot_w * i / (count - 1))

    def y(pct: float) -> float:
        return top + plot_h * (1 - pct / 100)

    body: list[str] = []
    for pct in (0, 25, 50, 75, 100):
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(pct):.1f}" y2="{y(pct):.1f}" '
            f'stroke="{GRID_COLOR}"/>'
            f'<text x="{left - 6}" y="{y(pct) + 4:.1f}" text-anchor="end" fill="{TEXT_COLOR}">'
            f"{pct}%</text>"
        )
    step = max(1, round(count / 8))
    for i, (monday, _) in enumerate(weeks):
        if i % step == 0 or i == count - 1:
            body.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                f'fill="{TEXT_COLOR}">{escape(monday.strftime("%b %d"))}</text>'
            )
    series = (
        ("Response", "response", RESPONSE_COLOR),
        ("Resolution", "resolution", RESOLUTION_COLOR),
    )
    for name, which, color in series:
        segment: list[tuple[float, float]] = []
        for i, (monday, tally) in enumerate(weeks):
            pct = getattr(tally, f"{which}_met_pct")
            if pct is None:
                body.append(_polyline(segment, color))
                segment = []
                continue
            segment.append((x(i), y(pct)))
            met, breached = getattr(tally, f"{which}_met"), getattr(tally, f"{which}_breached")
            body.append(
                f'<circle cx="{x(i):.1f}" cy="{y(pct):.1f}" r="3" fill="{color}" '
                f'data-week="{monday.isoformat()}" data-series="{which}" data-pct="{pct}">'
                f"<title>{name}, week of {monday.isoformat()}: {pct}% met "
                f"({met} met, {breached} breached)</title></circle>"
            )
        body.append(_polyline(segment, color))
    legend_x = left
    for name, _, color in series:
        body.append(
            f'<rect x="{legend_x}" y="8" width="12" height="4" fill="{color}"/>'
            f'<text x="{legend_x + 16}" y="13" fill="{TEXT_COLOR}">{name} % met</text>'
        )
        legend_x += 130
    return _svg(width, height, "Weekly % of SLA timers met", body, "trend-chart")


def _polyline(points: list[tuple[float, float]], color: str) -> str:
    if len(points) < 2:
        return ""
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'


def load_chart(engineers: Sequence[tuple[str, "Tally"]], width: int = 760) -> SafeString:
    """Horizontal bars per engineer: open requests, and done ones beside them (lighter)."""
    label_w, right, row_h, top = 130, 60, 34, 26
    height = top + row_h * max(1, len(engineers)) + 8
    most = max([1] + [max(t.open, t.done) for _, t in engineers])
    scale = (width - label_w - right) / most
    body = [
        f'<rect x="{label_w}" y="6" width="12" height="8" fill="{OPEN_COLOR}"/>'
        f'<text x="{label_w + 16}" y="14" fill="{TEXT_COLOR}">open</text>'
        f'<rect x="{label_w + 70}" y="6" width="12" height="8" fill="{DONE_COLOR}"/>'
        f'<text x="{label_w + 86}" y="14" fill="{TEXT_COLOR}">done</text>'
    ]
    if not engineers:
        body.append(f'<text x="{label_w}" y="{top + 14}" fill="{TEXT_COLOR}">Nobody yet.</text>')
    for i, (username, tally) in enumerate(engineers):
        y = top + i * row_h
        name = escape(username)
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="#1d2330">{name}</text>'
        )
        for offset, value, color, what in (
            (0, tally.open, OPEN_COLOR, "open"),
            (14, tally.done, DONE_COLOR, "done"),
        ):
            bar = value * scale
            body.append(
                f'<rect x="{label_w}" y="{y + offset}" width="{bar:.1f}" height="12" '
                f'fill="{color}" data-engineer="{name}" data-series="{what}" '
                f'data-value="{value}"><title>{name}: {value} {what}</title></rect>'
                f'<text x="{label_w + bar + 4:.1f}" y="{y + offset + 10}" '
                f'fill="{TEXT_COLOR}">{value}</text>'
            )
    return _svg(width, height, "Requests per DevOps engineer", body, "load-chart")
