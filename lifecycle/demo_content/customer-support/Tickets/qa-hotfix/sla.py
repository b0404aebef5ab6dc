"""Service levels: how soon a ticket must get its first answer."""

from datetime import datetime, timedelta

# Working hours to the first answer, by priority.
RESPONSE_HOURS = {"urgent": 2, "normal": 8, "low": 24}
SATURDAY = 5


def response_deadline(opened_at: datetime, priority: str) -> datetime:
    """Count the hours on weekdays only: a ticket opened on Friday evening is due on Monday."""
    deadline, remaining = opened_at, timedelta(hours=RESPONSE_HOURS[priority])
    while remaining > timedelta(0):
        midnight = datetime.combine(deadline.date() + timedelta(days=1), datetime.min.time(), deadline.tzinfo)
        if deadline.weekday() >= SATURDAY:
            deadline = midnight
            continue
        step = min(remaining, midnight - deadline)
        deadline += step
        remaining -= step
    return deadline
