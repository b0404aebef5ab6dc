"""The state revision of an environment: changes whenever what should run there changes.

Called in the same transaction as the change (a switch, a publish, a Redeploy or
a Retry), so an agent that polls sees the new revision exactly when it can read
the new state. The desired-state ETag is built from it: an unchanged poll reads
one row.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F

from lifecycle import revision
from lifecycle.models import Environment


def bump(environment_ids: Iterable[int], applications: Iterable[int] | None = None) -> None:
    """`applications`: the applications whose desired state changed there (None: any of them)."""
    Environment.objects.filter(pk__in=list(environment_ids)).update(state_revision=F("state_revision") + 1)
    revision.bump(applications)  # What should run there is shown on the grid too.
