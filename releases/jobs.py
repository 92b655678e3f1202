"""Entry points of the periodic jobs (portal/cron.py registers them)."""

from releases import opening, reminders, sync, waves


def sync_releases() -> str:
    return sync.sync().message


def maintenance_tick() -> dict[str, int]:
    """Every minute: waves whose window opened (or whose hook was lost) take their next step;
    upgrades that could not open (another request was open) open; suspended reminders."""
    return {
        "waves": waves.advance_all(),
        "opened": len(opening.open_upgrades()),
        "reminded": reminders.remind(),
    }
