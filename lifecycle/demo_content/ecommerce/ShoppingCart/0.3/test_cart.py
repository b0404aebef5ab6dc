from decimal import Decimal

import pytest

from .cart import Cart, CartError, order_total


def make_cart(region="EU"):
    cart = Cart(customer_id=42, region=region)
    cart.add_line("MUG-01", "Stoneware mug", Decimal("12.00"))
    return cart


def test_single_item_total_includes_shipping_and_vat():
    totals = order_total(make_cart())

    assert totals.subtotal == Decimal("12.00")
    assert totals.shipping == Decimal("4.90")
    assert totals.tax == Decimal("3.55")
    assert totals.total == Decimal("20.45")


def test_adding_the_same_product_raises_the_quantity():
    cart = make_cart()
    cart.add_line("MUG-01", "Stoneware mug", Decimal("12.00"), quantity=2)

    assert len(cart.lines) == 1
    assert cart.item_count == 3


def test_coupon_applies_to_the_subtotal():
    cart = make_cart()
    cart.add_line("TEAPOT-02", "Cast iron teapot", Decimal("48.00"))
    cart.apply_coupon(" spring10 ")

    assert order_total(cart).discount == Decimal("6.00")


def test_quantity_is_capped():
    with pytest.raises(CartError):
        make_cart().set_quantity("MUG-01", 100)
