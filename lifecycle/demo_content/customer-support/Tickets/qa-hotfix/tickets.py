"""Support tickets: opened by customers, answered by agents, closed when solved."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .sla import response_deadline


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    URGENT = "urgent"


class State(StrEnum):
    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting"
    CLOSED = "closed"


@dataclass
class Ticket:
    id: int
    subject: str
    customer_email: str
    opened_at: datetime
    priority: Priority = Priority.NORMAL
    state: State = State.OPEN
    assignee: str | None = None
    replies: list[tuple[datetime, str, str]] = field(default_factory=list)

    @property
    def due_by(self) -> datetime:
        return response_deadline(self.opened_at, self.priority)

    def is_overdue(self, now: datetime) -> bool:
        answered = any(author != self.customer_email for _, author, _ in self.replies)
        return self.state == State.OPEN and not answered and now > self.due_by

    def reply(self, at: datetime, author: str, text: str) -> None:
        self.replies.append((at, author, text))
        # An agent's reply hands the ticket to the customer; a customer's reply reopens it.
        self.state = State.OPEN if author == self.customer_email else State.WAITING_ON_CUSTOMER

    def close(self) -> None:
        self.state = State.CLOSED
