"""The server-side SVG charts: what they draw, and that data cannot inject markup."""

from datetime import date, timedelta

from dashboards import charts
from dashboards.figures import Tally


def week(met, breached):
    return Tally(count=met + breached, response_met=met, response_breached=breached)


def test_the_trend_breaks_its_line_where_a_week_has_nothing_decided():
    monday = date(2026, 3, 2)
    weeks = [
        (monday + timedelta(weeks=i), tally)
        for i, tally in enumerate([week(3, 1), week(1, 1), Tally(), week(2, 0), week(1, 3)])
    ]
    svg = str(charts.trend_chart(weeks))
    assert svg.startswith("<svg") and 'data-testid="trend-chart"' in svg
    points = svg.count('data-series="response"')
    assert points == 4
    assert svg.count("<polyline") == 2  # weeks 1-2 and 4-5; resolution has no point at all
    assert 'data-week="2026-03-02" data-series="response" data-pct="75.0"' in svg
    assert "Mar 02" in svg


def test_the_load_chart_escapes_names():
    engineers = [("<script>alert(1)</script>", Tally(open=3, done=7)), ("dana", Tally())]
    svg = str(charts.load_chart(engineers))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert 'data-engineer="dana" data-series="open" data-value="0"' in svg


def test_an_empty_load_chart_says_so():
    assert "Nobody yet." in str(charts.load_chart([]))
