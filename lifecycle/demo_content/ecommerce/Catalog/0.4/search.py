"""Free-text product search behind the storefront's search box, with filters."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from .products import Catalog, Product

# How much a matching word counts, by where it was found.
NAME_WEIGHT = 3
TAG_WEIGHT = 2
DESCRIPTION_WEIGHT = 1

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class SearchFilters:
    """What the filter panel beside the results narrows the search to."""

    category: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock_only: bool = False

    def accepts(self, product: Product) -> bool:
        if self.category and product.category != self.category:
            return False
        if self.min_price is not None and product.price < self.min_price:
            return False
        if self.max_price is not None and product.price > self.max_price:
            return False
        return product.in_stock or not self.in_stock_only

    @classmethod
    def from_query(cls, params: dict[str, str]) -> SearchFilters:
        """Read filters from the query string; a malformed price is ignored rather than refused."""
        return cls(
            category=params.get("category") or None,
            min_price=_price(params.get("min_price")),
            max_price=_price(params.get("max_price")),
            in_stock_only=params.get("in_stock") == "1",
        )


def _price(text: str | None) -> Decimal | None:
    try:
        value = Decimal(text or "")
    except ArithmeticError:
        return None
    return value if value.is_finite() and value >= 0 else None


def normalize(text: str) -> str:
    """Lower case without accents, so "crème" finds "creme"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


def tokenize(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def score(product: Product, terms: list[str]) -> int:
    name = set(tokenize(product.name))
    tags = {normalize(tag) for tag in product.tags}
    description = set(tokenize(product.description))
    total = 0
    for term in terms:
        if term in name:
            total += NAME_WEIGHT
        if term in tags:
            total += TAG_WEIGHT
        if term in description:
            total += DESCRIPTION_WEIGHT
    return total


def search(
    catalog: Catalog, query: str, filters: SearchFilters | None = None, *, limit: int = 20
) -> list[Product]:
    """Products matching any word of `query` and the filters, best first; no words lists everything."""
    filters = filters or SearchFilters()
    candidates = [product for product in catalog.all() if filters.accepts(product)]
    terms = tokenize(query)
    if not terms:
        return candidates[:limit]
    scored = [(score(product, terms), product) for product in candidates]
    matches = [(points, product) for points, product in scored if points > 0]
    # Best score first; among equals, products in stock before those sold out, then by name.
    matches.sort(key=lambda pair: (-pair[0], not pair[1].in_stock, pair[1].name.lower()))
    return [product for _, product in matches[:limit]]
