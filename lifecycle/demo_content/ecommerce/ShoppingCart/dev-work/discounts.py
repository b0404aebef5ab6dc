"""Discount rules. A customer gets the single best discount, never a sum of several."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .pricing import ZERO, round_money

HUNDRED = Decimal("100")


@dataclass(frozen=True)
class Coupon:
    code: str
    percent: Decimal = ZERO
    amount: Decimal = ZERO
    minimum_subtotal: Decimal = ZERO


COUPONS = {
    "SPRING10": Coupon("SPRING10", percent=Decimal("10")),
    "WELCOME5": Coupon("WELCOME5", amount=Decimal("5.00"), minimum_subtotal=Decimal("25.00")),
}

# (items in the cart, percent off): buying in bulk earns a volume discount.
VOLUME_TIERS = [(25, Decimal("10")), (10, Decimal("5"))]


def coupon_discount(subtotal: Decimal, code: str | None) -> Decimal:
    coupon = COUPONS.get(code or "")
    if coupon is None or subtotal < coupon.minimum_subtotal:
        return ZERO
    return round_money(subtotal * coupon.percent / HUNDRED + coupon.amount)


def volume_discount(subtotal: Decimal, item_count: int) -> Decimal:
    for threshold, percent in VOLUME_TIERS:
        if item_count >= threshold:
            return round_money(subtotal * percent / HUNDRED)
    return ZERO


def best_discount(subtotal: Decimal, item_count: int, code: str | None) -> Decimal:
    best = max(coupon_discount(subtotal, code), volume_discount(subtotal, item_count))
    # A discount never makes the goods free or negative.
    return min(best, subtotal)
