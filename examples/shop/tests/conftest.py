import pytest

from shop.cart import Cart


@pytest.fixture
def cart() -> Cart:
    return Cart()


@pytest.fixture(params=["EUR", "USD"])
def currency(request: pytest.FixtureRequest) -> str:
    return request.param
