"""Prices in cents, with discounts."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def apply_discount(cents: int, percent: int) -> int:
    if not 0 <= percent <= 100:
        raise ValueError(f"discount must be within 0..100, got {percent}")
    exact = Decimal(cents) * (100 - percent) / 100
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_price(cents: int, currency: str = "EUR") -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency}"
