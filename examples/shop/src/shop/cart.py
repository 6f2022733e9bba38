"""A shopping cart."""

from __future__ import annotations

from dataclasses import dataclass, field

from shop.pricing import apply_discount


@dataclass
class Cart:
    lines: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku -> (unit cents, quantity)

    def add(self, sku: str, cents: int, quantity: int = 1) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        unit, old = self.lines.get(sku, (cents, 0))
        self.lines[sku] = (unit, old + quantity)

    def total(self, discount: int = 0) -> int:
        return apply_discount(sum(unit * qty for unit, qty in self.lines.values()), discount)
