"""Catalog: the products the shop sells and the storefront's search."""

from .products import Catalog, Product, ProductNotFound, sample_catalog
from .search import SearchFilters, search

__all__ = ["Catalog", "Product", "ProductNotFound", "SearchFilters", "sample_catalog", "search"]
