"""Monthly payslips: gross salary, deductions and net pay."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
PENSION_RATE = Decimal("0.05")
OVERTIME_FACTOR = Decimal("1.5")
HOURS_PER_MONTH = Decimal("162.5")  # 37.5 hours a week
# (upper bound of the monthly band, rate); income above the last bound uses the last rate.
TAX_BANDS = [
    (Decimal("1000"), Decimal("0.00")),
    (Decimal("4000"), Decimal("0.20")),
    (None, Decimal("0.40")),
]


@dataclass(frozen=True)
class Payslip:
    employee_id: int
    month: str  # "2025-03"
    gross: Decimal
    overtime: Decimal
    pension: Decimal
    income_tax: Decimal

    @property
    def net(self) -> Decimal:
        return self.gross + self.overtime - self.pension - self.income_tax


def income_tax(taxable: Decimal) -> Decimal:
    tax, lower = Decimal("0"), Decimal("0")
    for upper, rate in TAX_BANDS:
        band_top = taxable if upper is None else min(taxable, upper)
        if band_top > lower:
            tax += (band_top - lower) * rate
        if upper is None or taxable <= upper:
            break
        lower = upper
    return tax.quantize(CENT, rounding=ROUND_HALF_UP)


def overtime_pay(annual_salary: Decimal, hours: Decimal) -> Decimal:
    hourly = annual_salary / 12 / HOURS_PER_MONTH
    return (hourly * OVERTIME_FACTOR * hours).quantize(CENT, rounding=ROUND_HALF_UP)


def payslip(
    employee_id: int, month: str, annual_salary: Decimal, overtime_hours: Decimal = Decimal("0")
) -> Payslip:
    gross = (annual_salary / 12).quantize(CENT, rounding=ROUND_HALF_UP)
    overtime = overtime_pay(annual_salary, overtime_hours)
    # Pension is paid on the base salary only, and before tax; overtime is taxed in full.
    pension = (gross * PENSION_RATE).quantize(CENT, rounding=ROUND_HALF_UP)
    return Payslip(employee_id, month, gross, overtime, pension, income_tax(gross + overtime - pension))
