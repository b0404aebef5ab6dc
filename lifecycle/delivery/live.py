"""What really runs: the live state of each application in each delivering environment.

The grid, the application page and the API show, for agent and webhook
environments, one state per application, read in a fixed number of queries
whatever the number of applications and environments (none at all when every
environment only records): the last reports (LiveApplication), the desired
tree hashes (CurrentVersion), the agent tokens' signs of life, the last
deployment naming each application there, and the open drifts.

The states, first match wins (docs/rules.md, "Live state and drift"):

1. `offline`: an agent environment none of whose tokens was seen within three
   of its intervals, or ever. What it last reported may no longer hold, so
   nothing else is claimed.
2. `failed`: the last deployment naming the application there ended with
   errors and the desired state is still not applied; or the hook failed on
   the desired state itself.
3. `delivering`: the desired tree hashes differ from those applied, a Retry or
   Redeploy is pending (desired generation above the applied one), or a
   deployment waiting for delivery names the application.
4. `drift`: the desired state is applied but the files found on the machine
   differ from it, or a drift is open.
5. `delivered`: the agent applied exactly the desired tree hashes and found
   exactly them on disk.

A webhook environment has no poll and no files to hash: its state is that of
its last deployment (waiting: delivering, with errors: failed, otherwise
delivered), and `record` while none has named the application.

A drift is open from the agent's upload until a user adopts or redeploys it, or
the agent reports the module's files equal to the desired ones again (then
lifecycle/delivery/reports.py resolves it GONE). Reading the state writes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Q
from django.utils import timezone

from lifecycle.models import (
    AgentToken,
    CurrentVersion,
    Delivery,
    Deployment,
    DeploymentItem,
    Drift,
    LiveApplication,
)

RECORD, DELIVERED, DELIVERING, FAILED, DRIFT, OFFLINE = (
    "record",
    "delivered",
    "delivering",
    "failed",
    "drift",
    "offline",
)
STATES = (RECORD, DELIVERED, DELIVERING, FAILED, DRIFT, OFFLINE)
# The word shown with each state (never colour alone), and a sign beside it.
LABELS = {
    RECORD: "recorded",
    DELIVERED: "delivered",
    DELIVERING: "delivering",
    FAILED: "failed",
    DRIFT: "drift",
    OFFLINE: "agent offline",
}
SIGNS = {RECORD: "", DELIVERED: "✓", DELIVERING: "…", FAILED: "✗", DRIFT: "≠", OFFLINE: "○"}
# An agent is offline when none of its environment's tokens was seen within this many intervals.
MISSED_POLLS = 3


@dataclass(frozen=True)
class LiveCell:
    state: str
    version: str | None  # the version the machines last reported applied
    reported_at: datetime | None  # the last report of this application there
    drift_id: int | None  # the open drift of one of its modules there, if any

    @property
    def label(self) -> str:
        return LABELS[self.state]

    @property
    def sign(self) -> str:
        return SIGNS[self.state]

    @property
    def delivers(self) -> bool:
        return self.state != RECORD


RECORDED = LiveCell(RECORD, None, None, None)


@dataclass(frozen=True)
class AgentStatus:
    """What an environment's agents last said of themselves: shown in the grid's column head."""

    online: bool
    last_seen_at: datetime | None  # the newest sign of life of any of its tokens


class LiveStates(dict):
    """(application id, environment id) -> LiveCell, with `agents`: environment id -> AgentStatus."""

    agents: dict[int, AgentStatus]


def live_states(applications, environments, *, now: datetime | None = None) -> LiveStates:
    applications = list(applications)
    environments = list(environments)
    now = now or timezone.now()
    states = LiveStates()
    states.agents = {}
    delivering = [environment for environment in environments if environment.delivers]
    for application in applications:
        for environment in environments:
            if not environment.delivers:
                states[application.pk, environment.pk] = RECORDED
    if not delivering:
        return states
    agents = _agent_statuses([e.pk for e in delivering if e.delivery == Delivery.AGENT], now)
    states.agents = agents
    if not applications:
        return states
    application_ids = [application.pk for application in applications]
    environment_ids = [environment.pk for environment in delivering]
    reports = {
        (row["application_id"], row["environment_id"]): row
        for row in LiveApplication.objects.filter(
            application_id__in=application_ids, environment_id__in=environment_ids
        ).values(
            "application_id",
            "environment_id",
            "desired_generation",
            "applied_generation",
            "version",
            "applied",
            "live",
            "hook_exit_status",
            "reported_at",
        )
    }
    desired: dict[tuple[int, int], dict[str, str]] = defaultdict(dict)
    for application_id, environment_id, module_name, content in CurrentVersion.objects.filter(
        module__application_id__in=application_ids, environment_id__in=environment_ids
    ).values_list("module__application_id", "environment_id", "module__name", "version__tree_hash"):
        desired[application_id, environment_id][module_name] = content
    last, waiting = _deployments(application_ids, environment_ids)
    drifts = _open_drifts(application_ids, environment_ids)

    for environment in delivering:
        for application in applications:
            key = (application.pk, environment.pk)
            report = reports.get(key)
            if environment.delivery == Delivery.AGENT:
                state = _agent_state(
                    online=agents[environment.pk].online,
                    desired=desired.get(key, {}),
                    report=report,
                    last=last.get(key),
                    waiting=key in waiting,
                    drift=key in drifts,
                )
            else:
                state = _webhook_state(last.get(key), waiting=key in waiting)
            states[key] = LiveCell(
                state=state,
                version=(report["version"] or None) if report else None,
                reported_at=report["reported_at"] if report else None,
                drift_id=drifts.get(key),
            )
    return states


def _agent_statuses(environment_ids, now) -> dict[int, AgentStatus]:
    """Online when any unrevoked token of the environment was seen within MISSED_POLLS of its intervals."""
    seen: dict[int, datetime | None] = dict.fromkeys(environment_ids)
    online: set[int] = set()
    for environment_id, last_seen_at, interval in AgentToken.objects.filter(
        environment_id__in=environment_ids, revoked_at__isnull=True, last_seen_at__isnull=False
    ).values_list("environment_id", "last_seen_at", "interval_seconds"):
        if seen[environment_id] is None or last_seen_at > seen[environment_id]:
            seen[environment_id] = last_seen_at
        if _alive(now, last_seen_at, interval):
            online.add(environment_id)
    return {pk: AgentStatus(online=pk in online, last_seen_at=seen[pk]) for pk in environment_ids}


def agents_online(now: datetime) -> set[int]:
    """The agent environments with an agent online now, as their column heads say: one query."""
    return {
        environment_id
        for environment_id, last_seen_at, interval in AgentToken.objects.filter(
            environment__delivery=Delivery.AGENT, revoked_at__isnull=True, last_seen_at__isnull=False
        ).values_list("environment_id", "last_seen_at", "interval_seconds")
        if _alive(now, last_seen_at, interval)
    }


def _alive(now: datetime, last_seen_at: datetime, interval: int) -> bool:
    return now - last_seen_at <= timedelta(seconds=MISSED_POLLS * max(interval, 1))


def _deployments(application_ids, environment_ids):
    """The last deployment naming each application in each environment, and which ones are waiting.

    One query: the items of the newest deployment per (application, target), and of any deployment
    still waiting for delivery. Of several rows per pair, the highest deployment id is the last.
    """
    items = DeploymentItem.objects.filter(
        application_id__in=application_ids, deployment__target_id__in=environment_ids
    )
    newest = items.values("application_id", "deployment__target_id").annotate(last=Max("deployment_id"))
    last: dict[tuple[int, int], tuple[int, str]] = {}
    waiting: set[tuple[int, int]] = set()
    for application_id, environment_id, deployment_id, status in items.filter(
        Q(deployment_id__in=newest.values("last")) | Q(deployment__status=Deployment.Status.WAITING)
    ).values_list("application_id", "deployment__target_id", "deployment_id", "deployment__status"):
        key = (application_id, environment_id)
        if status == Deployment.Status.WAITING:
            waiting.add(key)
        if key not in last or deployment_id > last[key][0]:
            last[key] = (deployment_id, status)
    return last, waiting


def _open_drifts(application_ids, environment_ids) -> dict[tuple[int, int], int]:
    """(application, environment) -> the open drift of one of its modules there (the oldest)."""
    drifts: dict[tuple[int, int], int] = {}
    for pk, environment_id, application_id in Drift.objects.filter(
        resolved_at__isnull=True,
        environment_id__in=environment_ids,
        module__application_id__in=application_ids,
    ).values_list("pk", "environment_id", "module__application_id"):
        key = (application_id, environment_id)
        drifts[key] = min(pk, drifts.get(key, pk))
    return drifts


def _agent_state(*, online, desired, report, last, waiting, drift) -> str:
    if not online:
        return OFFLINE
    applied = (report["applied"] or {}) if report else {}
    live = (report["live"] or {}) if report else {}
    pending = bool(report) and report["desired_generation"] > report["applied_generation"]
    up_to_date = applied == desired and not pending
    last_failed = last is not None and last[1] == Deployment.Status.ERRORS
    hook_failed = report is not None and report["hook_exit_status"] not in (None, 0)
    # A deployment that ended with errors counts until the agent applies the desired state after all
    # (it was late, or only another application of that deployment failed); a hook failure counts on it.
    if (last_failed and not up_to_date) or (up_to_date and hook_failed):
        return FAILED
    if not up_to_date or waiting:
        return DELIVERING
    if live != applied or drift:
        return DRIFT
    return DELIVERED


def _webhook_state(last, *, waiting) -> str:
    if waiting:
        return DELIVERING
    if last is None:
        return RECORD
    return FAILED if last[1] == Deployment.Status.ERRORS else DELIVERED
