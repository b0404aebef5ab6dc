"""Storefront pages: the product list with search, and the cart."""

from decimal import Decimal

from catalog import ProductNotFound, SearchFilters, sample_catalog, search
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from shopping_cart import Cart, CartError, order_total

CATALOG = sample_catalog()


def _cart(request) -> Cart:
    """The cart lives in the session, as plain data, until the order is placed."""
    data = request.session.get("cart", {"region": "EU", "lines": [], "coupon": None})
    cart = Cart(customer_id=request.user.pk, region=data["region"], coupon_code=data["coupon"])
    for sku, name, price, quantity in data["lines"]:
        cart.add_line(sku, name, Decimal(price), quantity)
    return cart


def _save(request, cart: Cart) -> None:
    request.session["cart"] = {
        "region": cart.region,
        "coupon": cart.coupon_code,
        "lines": [[line.sku, line.name, str(line.unit_price), line.quantity] for line in cart.lines],
    }


@require_GET
def product_list(request):
    query = request.GET.get("q", "")[:100]
    filters = SearchFilters.from_query(request.GET)
    context = {
        "products": search(CATALOG, query, filters),
        "query": query,
        "filters": filters,
        "categories": CATALOG.categories(),
    }
    return render(request, "shop/product_list.html", context)


@require_GET
def cart_detail(request):
    cart = _cart(request)
    return render(request, "shop/cart.html", {"cart": cart, "totals": order_total(cart)})


@require_POST
def cart_add(request):
    try:
        product = CATALOG.get(request.POST.get("sku", ""))
        quantity = int(request.POST.get("quantity", "1"))
        cart = _cart(request)
        cart.add_line(product.sku, product.name, product.price, quantity)
    except (ProductNotFound, CartError, ValueError) as error:
        messages.error(request, str(error))
        return redirect("shop:products")
    _save(request, cart)
    messages.success(request, f"{product.name} is in your cart.")
    return redirect("shop:cart")


@require_POST
def cart_update(request):
    cart = _cart(request)
    try:
        cart.set_quantity(request.POST.get("sku", ""), int(request.POST.get("quantity", "0")))
    except (CartError, ValueError) as error:
        messages.error(request, str(error))
    else:
        _save(request, cart)
    return redirect("shop:cart")


@require_POST
def cart_remove(request):
    cart = _cart(request)
    try:
        line = cart.remove_line(request.POST.get("sku", ""))
    except CartError as error:
        messages.error(request, str(error))
    else:
        _save(request, cart)
        messages.success(request, f"{line.name} was removed from your cart.")
    return redirect("shop:cart")
