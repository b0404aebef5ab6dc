"""Refunding paid orders, fully or in part."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from .gateway import Payment, PaymentGateway

ZERO = Decimal("0.00")


class RefundError(ValueError):
    """A refund that cannot be made; the message is shown to the support agent."""


class RefundReason(StrEnum):
    """Why the customer is refunded: reported monthly to find products that come back."""

    DAMAGED = "damaged"
    NOT_RECEIVED = "not_received"
    NOT_AS_DESCRIBED = "not_as_described"
    CHANGED_MIND = "changed_mind"
    DUPLICATE_CHARGE = "duplicate_charge"
    OTHER = "other"


@dataclass(frozen=True)
class Refund:
    payment_id: str
    amount: Decimal
    reason: RefundReason
    provider_id: str
    status: str


def refundable_amount(payment: Payment, already_refunded: Decimal) -> Decimal:
    return max(payment.amount - already_refunded, ZERO)


def refund_payment(
    gateway: PaymentGateway,
    payment: Payment,
    amount: Decimal | None = None,
    *,
    reason: RefundReason,
    note: str = "",
    already_refunded: Decimal = ZERO,
) -> Refund:
    """Refund `amount` of a payment, or all that is left of it when no amount is given."""
    if reason == RefundReason.OTHER and not note.strip():
        raise RefundError('Say why in the note when the reason is "other".')
    if payment.status != "succeeded":
        raise RefundError(f"Payment {payment.id} is {payment.status}; only a completed payment is refunded.")
    left = refundable_amount(payment, already_refunded)
    amount = left if amount is None else amount
    if amount <= 0:
        raise RefundError("Nothing left to refund.")
    if amount > left:
        raise RefundError(f"At most {left} {payment.currency} can still be refunded.")
    # One key per (payment, amount already refunded): a double click refunds once.
    key = f"refund-{payment.id}-{already_refunded}"
    body = gateway.refund(payment.id, amount, reason=reason.value, note=note, idempotency_key=key)
    return Refund(payment.id, amount, reason, body["id"], body["status"])
