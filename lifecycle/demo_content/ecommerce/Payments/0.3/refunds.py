"""Refunding paid orders, fully or in part."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .gateway import Payment, PaymentGateway

ZERO = Decimal("0.00")


class RefundError(ValueError):
    """A refund that cannot be made; the message is shown to the support agent."""


@dataclass(frozen=True)
class Refund:
    payment_id: str
    amount: Decimal
    provider_id: str
    status: str


def refundable_amount(payment: Payment, already_refunded: Decimal) -> Decimal:
    return max(payment.amount - already_refunded, ZERO)


def refund_payment(
    gateway: PaymentGateway,
    payment: Payment,
    amount: Decimal | None = None,
    *,
    already_refunded: Decimal = ZERO,
) -> Refund:
    """Refund `amount` of a payment, or all that is left of it when no amount is given."""
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
    body = gateway.refund(payment.id, amount, idempotency_key=key)
    return Refund(payment.id, amount, body["id"], body["status"])
