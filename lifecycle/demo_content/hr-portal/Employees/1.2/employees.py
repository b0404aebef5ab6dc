"""The staff directory: who works here, in which team, reporting to whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Employee:
    id: int
    name: str
    email: str
    team: str
    hired_on: date
    manager_id: int | None = None
    left_on: date | None = None

    def is_active(self, on: date) -> bool:
        return self.hired_on <= on and (self.left_on is None or on < self.left_on)


class Directory:
    def __init__(self, employees: list[Employee]):
        self._by_id = {employee.id: employee for employee in employees}

    def get(self, employee_id: int) -> Employee:
        return self._by_id[employee_id]

    def team(self, name: str, on: date) -> list[Employee]:
        members = [e for e in self._by_id.values() if e.team == name and e.is_active(on)]
        return sorted(members, key=lambda employee: employee.name)

    def managers_of(self, employee_id: int) -> list[Employee]:
        """The reporting chain upwards, nearest manager first."""
        chain, seen = [], {employee_id}
        manager_id = self.get(employee_id).manager_id
        # `seen` guards against a cycle typed by mistake in the HR system.
        while manager_id is not None and manager_id not in seen:
            seen.add(manager_id)
            manager = self.get(manager_id)
            chain.append(manager)
            manager_id = manager.manager_id
        return chain
