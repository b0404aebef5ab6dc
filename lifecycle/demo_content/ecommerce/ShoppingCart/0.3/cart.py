"""The customer's cart: what they are about to buy and what the order will cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .discounts import best_discount
from .pricing import ZERO, round_money, shipping_cost, tax_for

MAX_QUANTITY_PER_LINE = 99


class CartError(ValueError):
    """A change to the cart that cannot be made; the message is shown to the customer."""


@dataclass
class CartLine:
    sku: str
    name: str
    unit_price: Decimal
    quantity: int = 1

    @property
    def line_total(self) -> Decimal:
        return round_money(self.unit_price * self.quantity)


@dataclass
class Cart:
    customer_id: int | None
    region: str = "EU"
    lines: list[CartLine] = field(default_factory=list)
    coupon_code: str | None = None

    def add_line(self, sku: str, name: str, unit_price: Decimal, quantity: int = 1) -> CartLine:
        """Add a product, or raise its quantity when it is already in the cart."""
        if quantity < 1:
            raise CartError("Choose at least one item.")
        line = self.find_line(sku)
        if line is None:
            line = CartLine(sku=sku, name=name, unit_price=unit_price, quantity=0)
            self.lines.append(line)
        if line.quantity + quantity > MAX_QUANTITY_PER_LINE:
            raise CartError(f"You can buy at most {MAX_QUANTITY_PER_LINE} of {name}.")
        line.quantity += quantity
        return line

    def set_quantity(self, sku: str, quantity: int) -> None:
        line = self.find_line(sku)
        if line is None:
            raise CartError("That product is no longer in your cart.")
        if not 1 <= quantity <= MAX_QUANTITY_PER_LINE:
            raise CartError(f"Choose between 1 and {MAX_QUANTITY_PER_LINE} items.")
        line.quantity = quantity

    def find_line(self, sku: str) -> CartLine | None:
        return next((line for line in self.lines if line.sku == sku), None)

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    def is_empty(self) -> bool:
        return not self.lines

    def apply_coupon(self, code: str) -> None:
        self.coupon_code = code.strip().upper() or None

    def clear(self) -> None:
        """Empty the cart after the order is placed."""
        self.lines.clear()
        self.coupon_code = None


@dataclass(frozen=True)
class OrderTotal:
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal


def order_total(cart: Cart) -> OrderTotal:
    """What the customer pays: the lines, minus the best discount, plus shipping and tax.

    The checkout page, the confirmation e-mail and the amount charged by
    Payments all come from here, so they always agree.
    """
    subtotal = ZERO
    for line in cart.lines:
        subtotal += line.unit_price
    subtotal = round_money(subtotal)
    discount = best_discount(subtotal, cart.item_count, cart.coupon_code)
    goods = subtotal - discount
    shipping = shipping_cost(cart.region, goods) if cart.lines else ZERO
    tax = tax_for(cart.region, goods + shipping)
    total = round_money(goods + shipping + tax)
    return OrderTotal(subtotal=subtotal, discount=discount, shipping=shipping, tax=tax, total=total)
