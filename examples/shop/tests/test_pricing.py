import pytest

from shop.pricing import apply_discount, format_price


@pytest.mark.parametrize(
    ("cents", "percent", "expected"),
    [(1000, 0, 1000), (1000, 10, 900), (999, 50, 500), pytest.param(1, 100, 0, id="free")],
)
def test_apply_discount(cents: int, percent: int, expected: int) -> None:
    assert apply_discount(cents, percent) == expected


@pytest.mark.parametrize("percent", [-1, 101])
def test_discount_out_of_range(percent: int) -> None:
    with pytest.raises(ValueError, match="within 0..100"):
        apply_discount(100, percent)


def test_format_price(currency: str) -> None:
    assert format_price(1234, currency) == f"12.34 {currency}"
