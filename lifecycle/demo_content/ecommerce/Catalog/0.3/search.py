"""Free-text product search behind the storefront's search box."""

from __future__ import annotations

import re
import unicodedata

from .products import Catalog, Product

# How much a matching word counts, by where it was found.
NAME_WEIGHT = 3
TAG_WEIGHT = 2
DESCRIPTION_WEIGHT = 1

_WORD = re.compile(r"[a-z0-9]+")


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


def search(catalog: Catalog, query: str, *, limit: int = 20) -> list[Product]:
    """Products matching any word of `query`, best first; an empty query lists everything."""
    terms = tokenize(query)
    if not terms:
        return catalog.all()[:limit]
    scored = [(score(product, terms), product) for product in catalog.all()]
    matches = [(points, product) for points, product in scored if points > 0]
    # Best score first; among equals, products in stock before those sold out, then by name.
    matches.sort(key=lambda pair: (-pair[0], not pair[1].in_stock, pair[1].name.lower()))
    return [product for _, product in matches[:limit]]
