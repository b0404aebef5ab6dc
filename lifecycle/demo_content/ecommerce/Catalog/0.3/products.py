"""Products the shop sells, and the catalogue the storefront and the cart read them from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


class ProductNotFound(LookupError):
    def __init__(self, sku: str):
        super().__init__(f"No product with SKU {sku!r}.")
        self.sku = sku


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: Decimal
    description: str = ""
    stock: int = 0
    tags: tuple[str, ...] = ()

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class Catalog:
    """All products by SKU. Loaded once at start-up from the product feed."""

    def __init__(self, products: Iterable[Product] = ()):
        self._by_sku: dict[str, Product] = {}
        for product in products:
            self.add(product)

    def add(self, product: Product) -> None:
        if product.price < 0:
            raise ValueError(f"{product.sku} has a negative price.")
        self._by_sku[product.sku] = product

    def get(self, sku: str) -> Product:
        try:
            return self._by_sku[sku]
        except KeyError:
            raise ProductNotFound(sku) from None

    def all(self) -> list[Product]:
        return sorted(self._by_sku.values(), key=lambda product: product.name.lower())

    def categories(self) -> list[str]:
        return sorted({product.category for product in self._by_sku.values()})

    def __len__(self) -> int:
        return len(self._by_sku)


# SKU, name, category, price, description, stock, tags.
_SAMPLES = [
    ("MUG-01", "Stoneware mug", "Kitchen", "12.00", "Hand-glazed, 350 ml.", 140, ("ceramic", "coffee")),
    ("TEAPOT-02", "Cast iron teapot", "Kitchen", "48.00", "Enamelled inside, 1 l.", 12, ("tea", "iron")),
    ("APRON-03", "Linen apron", "Textiles", "29.50", "Washed linen, adjustable strap.", 0, ("linen",)),
    ("TOWEL-04", "Waffle tea towel", "Textiles", "9.90", "Set of two, cotton.", 300, ("cotton", "kitchen")),
    ("BOARD-05", "Oak chopping board", "Kitchen", "39.00", "End grain, oiled.", 25, ("wood", "oak")),
    ("CANDLE-06", "Beeswax candle", "Home", "14.50", "Burns for 40 hours.", 80, ("beeswax", "gift")),
]


def sample_catalog() -> Catalog:
    """The products the storefront shows in development and the tests use."""
    return Catalog(
        Product(sku, name, category, Decimal(price), description, stock, tags)
        for sku, name, category, price, description, stock, tags in _SAMPLES
    )
