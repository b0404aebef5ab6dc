"""Stock levels per product and warehouse, and the movements that change them."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Movement:
    sku: str
    warehouse: str
    quantity: int  # positive when goods arrive, negative when they leave
    at: datetime
    reason: str  # "delivery", "order", "return", "count"


class OutOfStock(Exception):
    pass


class Ledger:
    """Stock is never stored, only the movements: the level is their sum."""

    def __init__(self):
        self._movements: list[Movement] = []
        self._levels: dict[tuple[str, str], int] = defaultdict(int)

    def record(self, movement: Movement) -> None:
        key = (movement.sku, movement.warehouse)
        if self._levels[key] + movement.quantity < 0:
            raise OutOfStock(f"Only {self._levels[key]} of {movement.sku} in {movement.warehouse}.")
        self._movements.append(movement)
        self._levels[key] += movement.quantity

    def level(self, sku: str, warehouse: str | None = None) -> int:
        if warehouse is not None:
            return self._levels[sku, warehouse]
        return sum(quantity for (item, _), quantity in self._levels.items() if item == sku)
