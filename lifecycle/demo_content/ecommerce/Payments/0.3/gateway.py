"""Adapter between the shop and the card payment provider.

The rest of the shop talks to `PaymentGateway`; only this file knows the
provider's HTTP API, so changing provider means changing this file alone.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal

CURRENCIES = {"EUR", "GBP", "USD"}


class PaymentError(Exception):
    """The provider refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Payment:
    id: str
    order_id: str
    amount: Decimal
    currency: str
    status: str  # "succeeded", "pending" or "failed", as the provider says


def to_minor_units(amount: Decimal) -> int:
    """The provider counts cents: 12.34 -> 1234."""
    return int((amount * 100).to_integral_value())


class PaymentGateway:
    def __init__(self, api_url: str, api_key: str, *, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def charge(self, order_id: str, amount: Decimal, currency: str, card_token: str) -> Payment:
        if currency not in CURRENCIES:
            raise PaymentError(f"Currency {currency} is not accepted.")
        if amount <= 0:
            raise PaymentError("Nothing to charge.")
        body = self._post(
            "/charges",
            {
                "amount": to_minor_units(amount),
                "currency": currency,
                "source": card_token,
                "metadata": {"order_id": order_id},
            },
            # The order id as idempotency key: a retried checkout never charges twice.
            idempotency_key=f"charge-{order_id}",
        )
        return Payment(body["id"], order_id, amount, currency, body["status"])

    def refund(self, payment_id: str, amount: Decimal, *, idempotency_key: str) -> dict:
        return self._post(
            "/refunds",
            {"charge": payment_id, "amount": to_minor_units(amount)},
            idempotency_key=idempotency_key,
        )

    def _post(self, path: str, payload: dict, *, idempotency_key: str) -> dict:
        request = urllib.request.Request(
            self.api_url + path,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.api_key}",
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", {}).get("message", error.reason)
            # 4xx: the request itself is wrong (declined card...); 5xx: the provider's trouble.
            raise PaymentError(f"Payment provider said: {detail}", retryable=error.code >= 500) from None
        except (urllib.error.URLError, TimeoutError) as error:
            raise PaymentError(f"Payment provider unreachable: {error}", retryable=True) from None
