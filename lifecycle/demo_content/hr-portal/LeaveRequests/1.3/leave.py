"""Leave requests: an employee asks for days off, their manager approves or declines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

ANNUAL_ALLOWANCE = 25  # working days a year


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class LeaveError(ValueError):
    pass


def working_days(start: date, end: date) -> int:
    """Weekdays from start to end, both included."""
    days = (end - start).days + 1
    return sum(1 for offset in range(days) if (start + timedelta(offset)).weekday() < 5)


@dataclass
class LeaveRequest:
    employee_id: int
    start: date
    end: date
    status: Status = Status.PENDING
    history: list[str] = field(default_factory=list)

    @property
    def days(self) -> int:
        return working_days(self.start, self.end)

    def decide(self, manager_id: int, approve: bool, days_taken: int) -> None:
        if self.status is not Status.PENDING:
            raise LeaveError(f"This request was already {self.status}.")
        if approve and days_taken + self.days > ANNUAL_ALLOWANCE:
            raise LeaveError(f"Only {ANNUAL_ALLOWANCE - days_taken} days of leave are left this year.")
        self.status = Status.APPROVED if approve else Status.DECLINED
        self.history.append(f"{self.status} by manager {manager_id}")
