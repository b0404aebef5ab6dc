"""Catalog: the products the shop sells and the storefront's search."""

from .products import Catalog, Product, ProductNotFound, sample_catalog
from .search import search

__all__ = ["Catalog", "Product", "ProductNotFound", "sample_catalog", "search"]
