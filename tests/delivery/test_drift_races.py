"""Two users acting on one drift at the same moment, on PostgreSQL with real threads: one wins, once."""

import pytest
from django.db import connection

from hotfixes.models import Hotfix
from lifecycle.delivery import drift as drifts
from lifecycle.models import AccessLevel, AuditEvent, Drift, LiveApplication, ModuleVersion
from tests.delivery.test_drift import found
from tests.delivery.test_drift import shop as shop  # noqa: F401  (a fixture)
from tests.factories import make_user
from tests.lifecycle.test_concurrency import race

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks across connections need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.mark.parametrize(
    ("first", "second"), [("adopt", "adopt"), ("adopt", "redeploy"), ("redeploy", "redeploy")]
)
def test_one_of_two_actions_on_a_drift_wins(environments, shop, first, second):  # noqa: F811
    _, cart, production = shop
    drift = found(cart, production, {"main.py": "changed on the server\n"})
    alice, bob = (make_user(name, {production: AccessLevel.PUBLISH}) for name in ("alice", "bob"))
    versions = ModuleVersion.objects.count()
    outcomes = race(
        lambda: getattr(drifts, first)(Drift.objects.get(pk=drift.pk), alice),
        lambda: getattr(drifts, second)(Drift.objects.get(pk=drift.pk), bob),
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, Drift)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, drifts.DriftResolved)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    resolved = Drift.objects.get(pk=drift.pk)
    assert resolved.resolved_by == won[0].resolved_by
    assert f"by {resolved.resolved_by.username}" in str(lost[0])
    adopted = resolved.resolution == Drift.Resolution.ADOPTED
    assert ModuleVersion.objects.count() == versions + adopted
    assert Hotfix.objects.count() == adopted
    assert LiveApplication.objects.filter(desired_generation__gt=0).count() == (not adopted)
    assert AuditEvent.objects.filter(action__in=["drift_adopted", "drift_redeployed"]).count() == 1
