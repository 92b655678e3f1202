"""SLA timers of requests.

- `calendar`: working-day arithmetic, pure Python (no Django).
- `policies`: the targets per kind (admin-editable) and the cached calendar.
- `timers`: the clocks kept on the request row (start, stop, pause, due and 75% instants).
- `status`: what a timer's status is, for the JSON and for SQL filters.
- `next_alert`: when a timer's next alert falls due, and the partial index the sweep reads it
  from.
- `sweep`: the periodic job that sends at-risk warnings and breach alerts once each.
"""
