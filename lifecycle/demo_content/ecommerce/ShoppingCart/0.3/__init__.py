"""ShoppingCart: the customer's cart and what the order costs at checkout."""

from .cart import Cart, CartError, CartLine, OrderTotal, order_total

__all__ = ["Cart", "CartError", "CartLine", "OrderTotal", "order_total"]
