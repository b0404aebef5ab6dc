"""The warehouses goods ship from, and which one serves an order."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Warehouse:
    code: str
    city: str
    regions: tuple[str, ...]  # delivery regions it ships to, nearest first in the list


WAREHOUSES = [
    Warehouse("AMS", "Amsterdam", ("EU", "UK")),
    Warehouse("NJ1", "Newark", ("US",)),
]


def serving(region: str) -> list[Warehouse]:
    return [warehouse for warehouse in WAREHOUSES if region in warehouse.regions]
