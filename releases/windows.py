"""Maintenance windows: one weekday and its hours in the instance's own time zone. An end at or
before the start runs past midnight into the next day. No window: any time will do."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from provisioning.models import Instance

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Window:
    weekday: int  # 0 = Monday
    start: time
    end: time
    time_zone: str

    def __str__(self) -> str:
        return (
            f"{WEEKDAY_NAMES[self.weekday]} {self.start:%H:%M}-{self.end:%H:%M} ({self.time_zone})"
        )

    def _span(self, day: date) -> tuple[datetime, datetime]:
        """The window that opens on `day` (which must be its weekday), as aware instants."""
        tz = ZoneInfo(self.time_zone)
        opens = datetime.combine(day, self.start, tzinfo=tz)
        closes_on = day if self.end > self.start else day + timedelta(days=1)
        closes = datetime.combine(closes_on, self.end, tzinfo=tz)
        return opens, closes

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.time_zone))
        # The window that may hold `moment` opened today or (past midnight) yesterday.
        for day in (local.date(), local.date() - timedelta(days=1)):
            if day.weekday() != self.weekday:
                continue
            opens, closes = self._span(day)
            if opens <= moment < closes:
                return True
        return False

    def next_opening(self, moment: datetime) -> datetime:
        """The start of the window that holds `moment`, or of the next one."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        for offset in range(-1, 9):
            day = local.date() + timedelta(days=offset)
            if day.weekday() != self.weekday:
                continue
            opens, closes = self._span(day)
            if closes > moment:
                return opens
        raise AssertionError("a weekly window opens within 8 days")


def window_of(instance: "Instance") -> Window | None:
    if instance.maintenance_weekday is None:
        return None
    assert instance.maintenance_start is not None and instance.maintenance_end is not None
    return Window(
        instance.maintenance_weekday,
        instance.maintenance_start,
        instance.maintenance_end,
        instance.time_zone or "UTC",
    )
