"""Money rounding, shipping and tax rules of the shop, per delivery region."""

from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal("0.00")
CENT = Decimal("0.01")

# Flat shipping per region; orders whose goods reach the threshold ship free.
SHIPPING_RATES = {"EU": Decimal("4.90"), "UK": Decimal("5.90"), "US": Decimal("7.50")}
FREE_SHIPPING_FROM = {"EU": Decimal("50.00"), "UK": Decimal("60.00"), "US": Decimal("75.00")}

# VAT on goods and shipping. US prices are shown before sales tax, which the
# payment provider adds per state at charge time.
TAX_RATES = {"EU": Decimal("0.21"), "UK": Decimal("0.20"), "US": Decimal("0.00")}


class UnknownRegion(ValueError):
    def __init__(self, region: str):
        super().__init__(f"We do not deliver to {region!r} yet.")


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _check_region(region: str) -> None:
    if region not in SHIPPING_RATES:
        raise UnknownRegion(region)


def shipping_cost(region: str, goods: Decimal) -> Decimal:
    """Shipping for goods worth `goods` after discounts."""
    _check_region(region)
    if goods >= FREE_SHIPPING_FROM[region]:
        return ZERO
    return SHIPPING_RATES[region]


def tax_for(region: str, amount: Decimal) -> Decimal:
    _check_region(region)
    return round_money(amount * TAX_RATES[region])
