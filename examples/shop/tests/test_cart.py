import unittest

import pytest

from shop.cart import Cart


class TestCart:
    def test_empty_total(self, cart: Cart) -> None:
        assert cart.total() == 0

    def test_add_accumulates(self, cart: Cart) -> None:
        cart.add("apple", 50, 2)
        cart.add("apple", 50)
        assert cart.lines["apple"] == (50, 3)

    def test_total_with_discount(self, cart: Cart) -> None:
        cart.add("pear", 200, 5)
        assert cart.total(discount=10) == 900

    @pytest.mark.xfail(reason="negative quantities are not supported yet", strict=True)
    def test_remove_by_negative_quantity(self, cart: Cart) -> None:
        cart.add("apple", 50, 2)
        cart.add("apple", 50, -1)
        assert cart.lines["apple"] == (50, 1)


@pytest.mark.slow
@pytest.mark.skip(reason="shows a skipped test in the report")
def test_checkout_with_payment_provider() -> None:
    raise AssertionError("never runs")


class CartCase(unittest.TestCase):
    def test_rejects_zero_quantity(self) -> None:
        with self.assertRaises(ValueError):
            Cart().add("x", 1, 0)
