"""Payments: charging orders through the card provider, and refunds."""

from .gateway import Payment, PaymentError, PaymentGateway
from .refunds import Refund, RefundError, refund_payment

__all__ = ["Payment", "PaymentError", "PaymentGateway", "Refund", "RefundError", "refund_payment"]
