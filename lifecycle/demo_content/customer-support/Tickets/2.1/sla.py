"""Service levels: how soon a ticket must get its first answer."""

from datetime import datetime, timedelta

# Working hours to the first answer, by priority.
RESPONSE_HOURS = {"urgent": 2, "normal": 8, "low": 24}


def response_deadline(opened_at: datetime, priority: str) -> datetime:
    return opened_at + timedelta(hours=RESPONSE_HOURS[priority])
