"""What agents tell Stageboard: reports of what they applied and found, and the files of a drift.

A report (docs/agent.md, `POST /api/v1/agent/reports`) is checked whole before
anything is written: every field's type and size, so a hostile or broken agent
gets a 400 that names the field and changes nothing. Then one transaction
upserts the LiveApplication rows (bulk), appends the agent's log lines and hook
output to the deployments that wait for this environment, and marks drifts
that are gone; delivery/confirming.py then decides what the reports finish.

A drift is a module whose files in `current/` on the machine (the agent's
`live` tree hash) differ from what the agent wrote (`applied`), when that is
the version current in the environment. Stageboard asks for its files once per
distinct content, and keeps one open Drift per module and environment.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from lifecycle import audit, revision
from lifecycle.delivery import confirming
from lifecycle.models import (
    AgentToken,
    AuditEvent,
    CurrentVersion,
    Deployment,
    DeploymentLogLine,
    Drift,
    LiveApplication,
)
from lifecycle.publishing import store_blobs
from lifecycle.snapshots import content_hash, tree_hash

logger = logging.getLogger(__name__)

# Bounds of a report, beyond the 1 MB of its body (lifecycle/agent_api.py); docs/agent.md lists them.
MAX_APPLICATIONS = 5000
MAX_MODULES = 5000  # per `applied` or `live` map
MAX_NAME = 100  # an application's or a module's name, as the models hold them
MAX_VERSION = 40  # LiveApplication.version
MAX_AGENT = 200
MAX_INTERVAL = 86400
MAX_LOG_LINES = 200
MAX_LOG_LINE = 500
MAX_OUTPUT = 4096  # hook output kept: the last 4096 characters
# Log lines one report adds to deployments, all applications together: a report of thousands of
# applications must not write a row per byte of its body. The rest is counted in one line.
MAX_REPORT_LOG_LINES = 2000
MAX_ID = 2**63 - 1
MIN_EXIT, MAX_EXIT = -(2**31), 2**31 - 1
_HASH = re.compile(r"[0-9a-f]{64}")
# A module whose folder is gone from the machine: drift, but with no files to upload.
EMPTY_TREE = tree_hash({})

_REPORT_KEYS = {"applications", "interval", "agent"}
_APPLICATION_KEYS = {"name", "deployment", "generation", "version", "applied", "live", "hook", "log"}
_HOOK_KEYS = {"exit_status", "output"}


class ReportRejected(ValueError):
    """A report (or a webhook receiver's answer) that is not what docs/agent.md describes."""


class NotWaiting(Exception):
    """A webhook receiver answered for a deployment that no longer waits for its delivery."""


class NotApplied(Exception):
    """A drift upload for a module whose current version the agents have not reported applying."""


@dataclass
class _Hook:
    exit_status: int
    output: str


@dataclass
class _Application:
    name: str
    deployment: int | None = None
    generation: int = 0
    version: str = ""
    applied: dict[str, str] = field(default_factory=dict)
    live: dict[str, str] = field(default_factory=dict)
    hook: _Hook | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class _Report:
    applications: list[_Application]
    interval: int | None
    agent: str


# Checking a report.


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # A lone surrogate ("\ud800"), which JSON allows and no database stores.
        return False
    return True


def _text(value, where: str, max_length: int, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise ReportRejected(f"{where} must be a string, not {_kind(value)}.")
    if len(value) > max_length:
        raise ReportRejected(f"{where} has {len(value)} characters; at most {max_length} are allowed.")
    if not empty and not value:
        raise ReportRejected(f"{where} must not be empty.")
    if "\x00" in value or not _is_unicode(value):
        raise ReportRejected(f"{where} holds a NUL character or text that is not valid Unicode.")
    return value


def _integer(value, where: str, low: int, high: int) -> int:
    # JSON true and false are Python's bools, which are ints: refused, as are 1.0 and 1e3.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportRejected(f"{where} must be a whole number, not {_kind(value)}.")
    if not low <= value <= high:
        raise ReportRejected(f"{where} must be between {low} and {high}, not {value}.")
    return value


def _object(value, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(value, dict):
        raise ReportRejected(f"{where} must be an object, not {_kind(value)}.")
    unknown = sorted(set(value) - allowed)
    if unknown:
        names = ", ".join(repr(key[:40]) for key in unknown[:5])
        raise ReportRejected(f"{where} has unknown fields: {names}; see docs/agent.md.")
    missing = sorted(required - set(value))
    if missing:
        raise ReportRejected(f"{where} lacks the field {missing[0]!r}.")
    return value


def _hashes(value, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ReportRejected(f"{where} must be an object of module name -> tree hash, not {_kind(value)}.")
    if len(value) > MAX_MODULES:
        raise ReportRejected(f"{where} names {len(value)} modules; at most {MAX_MODULES} are allowed.")
    for module, digest in value.items():
        _text(module, f"A module name in {where}", MAX_NAME, empty=False)
        if not isinstance(digest, str) or not _HASH.fullmatch(digest):
            raise ReportRejected(
                f"{where}[{module!r}] must be a tree hash (64 lowercase hexadecimal digits)."
            )
    return value


def _hook(value, where: str) -> _Hook | None:
    if value is None:
        return None
    value = _object(value, where, _HOOK_KEYS, {"exit_status"})
    exit_status = _integer(value["exit_status"], f"{where}.exit_status", MIN_EXIT, MAX_EXIT)
    output = value.get("output", "")
    if not isinstance(output, str):
        raise ReportRejected(f"{where}.output must be a string, not {_kind(output)}.")
    return _Hook(exit_status, kept_output(output))


def kept_output(output: str) -> str:
    """The last MAX_OUTPUT characters of a program's output, as the database can store them.

    Output is whatever a hook printed: a NUL or an undecodable byte there is not
    the agent's fault, so it is replaced, not refused.
    """
    output = output[-MAX_OUTPUT:].replace("\x00", "\ufffd")
    return output.encode("utf-8", "replace").decode("utf-8")


def _log(value, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ReportRejected(f"{where} must be a list of strings, not {_kind(value)}.")
    if len(value) > MAX_LOG_LINES:
        raise ReportRejected(f"{where} has {len(value)} lines; at most {MAX_LOG_LINES} are allowed.")
    return [_text(line, f"A line of {where}", MAX_LOG_LINE) for line in value]


def _application(value, index: int) -> _Application:
    where = f"applications[{index}]"
    value = _object(value, where, _APPLICATION_KEYS, {"name"})
    application = _Application(name=_text(value["name"], f"{where}.name", MAX_NAME, empty=False))
    where = f"The report of {application.name!r}"
    if value.get("deployment") is not None:
        application.deployment = _integer(value["deployment"], f"{where}: deployment", 1, MAX_ID)
    if "generation" in value:
        application.generation = _integer(value["generation"], f"{where}: generation", 0, 2**31 - 1)
    if "version" in value:
        application.version = _text(value["version"], f"{where}: version", MAX_VERSION)
    application.applied = _hashes(value.get("applied", {}), f"{where}: applied")
    application.live = _hashes(value.get("live", {}), f"{where}: live")
    application.hook = _hook(value.get("hook"), f"{where}: hook")
    application.log = _log(value.get("log", []), f"{where}: log")
    return application


def parse_report(payload) -> _Report:
    """The report `payload` (parsed JSON) as checked values, or ReportRejected naming what is wrong."""
    payload = _object(payload, "The report", _REPORT_KEYS, {"applications"})
    applications = payload["applications"]
    if not isinstance(applications, list):
        raise ReportRejected(f"applications must be a list, not {_kind(applications)}.")
    if len(applications) > MAX_APPLICATIONS:
        raise ReportRejected(
            f"The report names {len(applications)} applications; at most {MAX_APPLICATIONS} are allowed."
        )
    parsed = [_application(value, index) for index, value in enumerate(applications)]
    names = [application.name for application in parsed]
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise ReportRejected(f"The report names {twice!r} twice.")
    interval = payload.get("interval")
    if interval is not None:
        interval = _integer(interval, "interval", 1, MAX_INTERVAL)
    agent = _text(payload.get("agent", ""), "agent", MAX_AGENT)
    return _Report(applications=parsed, interval=interval, agent=agent)


# Recording a report.


def _actor(token: AgentToken) -> str:
    """Who acted, for the audit trail: no username has a colon, so this names no user."""
    return f"agent:{token.prefix}"


def record_report(token: AgentToken, payload) -> dict:
    """Record an agent's report for `token`'s environment; the answer docs/agent.md describes.

    Applications Stageboard does not run in the environment are ignored and
    named in the answer; a deployment number that is not of this environment
    is not linked. Raises ReportRejected, before writing anything, for a
    report that is not well formed.
    """
    report = parse_report(payload)
    environment = token.environment
    now = timezone.now()
    label = report.agent or token.name

    # application name -> (application id, {module name: (module id, version id, desired tree hash)})
    known: dict[str, tuple[int, dict[str, tuple[int, int, str]]]] = {}
    for (
        application_id,
        application_name,
        module_id,
        module_name,
        version_id,
        desired,
    ) in CurrentVersion.objects.filter(
        environment=environment,
        module__application__name__in=[application.name for application in report.applications],
    ).values_list(
        "module__application_id",
        "module__application__name",
        "module_id",
        "module__name",
        "version_id",
        "version__tree_hash",
    ):
        known.setdefault(application_name, (application_id, {}))[1][module_name] = (
            module_id,
            version_id,
            desired,
        )
    reported = [application for application in report.applications if application.name in known]
    ignored = [application.name for application in report.applications if application.name not in known]

    deployments = dict(
        Deployment.objects.filter(
            pk__in={application.deployment for application in reported if application.deployment},
            target=environment,
        ).values_list("pk", "status")
    )

    # What the last reports applied, and the hook outcome of that apply.
    # The whole row as the grid shows it, so a report that changes nothing leaves the pipeline revision be.
    previous = {
        application_id: (applied, generation, exit_status, output, version, deployment_id, live)
        for application_id, applied, generation, exit_status, output, version, deployment_id, live in (
            LiveApplication.objects.filter(
                environment=environment, application_id__in=[known[a.name][0] for a in reported]
            ).values_list(
                "application_id",
                "applied",
                "applied_generation",
                "hook_exit_status",
                "hook_output",
                "version",
                "deployment_id",
                "live",
            )
        )
    }
    rows, log_lines, wanted, gone, emptied = [], [], [], [], []
    open_drifts = dict(
        Drift.objects.filter(
            environment=environment,
            resolved_at__isnull=True,
            module_id__in=[ids[0] for _, modules in known.values() for ids in modules.values()],
        ).values_list("module_id", "tree_hash")
    )
    for application in reported:
        application_id, modules = known[application.name]
        deployment_id = application.deployment if application.deployment in deployments else None
        # Only modules of the application that run here: the rest would be noise for the live state.
        applied = {name: digest for name, digest in application.applied.items() if name in modules}
        if application.hook is not None:
            exit_status, output = application.hook.exit_status, application.hook.output
        elif previous.get(application_id, (None, None))[:2] == (applied, application.generation):
            # A sign of life, or a pass that wrote nothing: the hook outcome is still the last apply's.
            exit_status, output = previous[application_id][2:4]
        else:
            exit_status, output = None, ""  # Applied something new and ran no hook.
        rows.append(
            LiveApplication(
                environment=environment,
                application_id=application_id,
                applied_generation=application.generation,
                version=application.version,
                deployment_id=deployment_id,
                applied=applied,
                live={name: digest for name, digest in application.live.items() if name in modules},
                hook_exit_status=exit_status,
                hook_output=output,
                reported_at=now,
            )
        )
        if deployment_id is not None and deployments[deployment_id] == Deployment.Status.WAITING:
            log_lines.extend(_log_lines(deployment_id, label, application, now))
        for name, (module_id, _, desired) in modules.items():
            live = application.live.get(name)
            if live is None:
                continue  # Nothing found on the machine (or not looked at): nothing to upload.
            if live == desired and module_id in open_drifts:
                gone.append(module_id)
            elif (
                application.applied.get(name) == desired
                and live != desired
                and open_drifts.get(module_id) != live
            ):
                # The agent wrote what should run and the machine now differs: a drift we lack the files of.
                # A folder emptied or deleted there has no files to upload (no zip holds nothing): its
                # drift is opened here, so that the grid's "drift" leads to a page offering Redeploy.
                (emptied if live == EMPTY_TREE else wanted).append(name)

    with transaction.atomic():
        # One statement: desired_generation, which Retry and Redeploy own, is never written here.
        LiveApplication.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["environment", "application"],
            update_fields=[
                "applied_generation",
                "version",
                "deployment",
                "applied",
                "live",
                "hook_exit_status",
                "hook_output",
                "reported_at",
            ],
            batch_size=500,
        )
        DeploymentLogLine.objects.bulk_create(_capped(log_lines, label, now), batch_size=500)
        if gone:
            # The machine runs the deployed files again: the drift went away by itself.
            Drift.objects.filter(
                environment=environment, module_id__in=gone, resolved_at__isnull=True
            ).update(resolved_at=now, resolution=Drift.Resolution.GONE)
        shown = {
            row.application_id: (
                row.applied,
                row.applied_generation,
                row.hook_exit_status,
                row.hook_output,
                row.version,
                row.deployment_id,
                row.live,
            )
            for row in rows
        }
        moved = [pk for pk, state in shown.items() if previous.get(pk) != state]
        if gone:
            revision.bump()  # A drift went away: rare, and its application is a query away.
        elif moved:
            revision.bump(moved)  # Only when the live state moved: every agent reports every few seconds.
        if report.interval is not None and report.interval != token.interval_seconds:
            AgentToken.objects.filter(pk=token.pk).update(interval_seconds=report.interval)
            token.interval_seconds = report.interval
    for name in emptied:
        record_drift(token, name, {})
    confirming.check(environment)

    answer: dict = {"drift_uploads": sorted(wanted)}
    if ignored:
        answer["ignored"] = ignored
        answer["message"] = (
            f"Ignored {len(ignored)} application{'s' if len(ignored) != 1 else ''} that "
            f"{environment.name} does not run: {', '.join(ignored[:10])}{'…' if len(ignored) > 10 else ''}."
        )
    return answer


def _capped(lines: list[DeploymentLogLine], label: str, now) -> list[DeploymentLogLine]:
    if len(lines) <= MAX_REPORT_LOG_LINES:
        return lines
    kept, dropped = lines[:MAX_REPORT_LOG_LINES], lines[MAX_REPORT_LOG_LINES:]
    for deployment_id in dict.fromkeys(line.deployment_id for line in dropped):
        count = sum(line.deployment_id == deployment_id for line in dropped)
        message = f"{label}: {count} more line{'s' if count != 1 else ''} of this report were not kept."
        kept.append(DeploymentLogLine(deployment_id=deployment_id, at=now, message=message))
    return kept


def _log_lines(deployment_id: int, label: str, application: _Application, now) -> list[DeploymentLogLine]:
    lines = [
        DeploymentLogLine(deployment_id=deployment_id, at=now, message=f"{label}: {application.name}: {line}")
        for line in application.log
    ]
    hook = application.hook
    if hook is not None:
        message = f"{label}: {application.name}: the hook exited with status {hook.exit_status}"
        lines.append(
            DeploymentLogLine(
                deployment_id=deployment_id,
                at=now,
                level=DeploymentLogLine.Level.ERROR if hook.exit_status else DeploymentLogLine.Level.INFO,
                message=message + (f":\n{hook.output}" if hook.output else "."),
            )
        )
    return lines


# Drift uploads.


def record_drift(token: AgentToken, module_name: str, files: Mapping[str, bytes]) -> Drift | None:
    """Keep the files an agent found in `current/<module>/`; None when they equal the deployed version.

    `files` were read by archives.read_archive (limits and refusals of any
    publish). The module must run in the token's environment (Http404
    otherwise, as for a missing one), and the agents' last report must say they applied the version
    current there (NotApplied otherwise). The one open drift of the module there is
    created, or updated with the newer files; DRIFT_FOUND is audited once, when
    it opens.
    """
    environment = token.environment
    current = (
        CurrentVersion.objects.filter(environment=environment, module__name=module_name)
        .select_related("module__application", "version")
        .first()
    )
    if current is None:
        raise Http404(f"There is no module named {module_name!r} in {environment.name}.")
    module, deployed = current.module, current.version
    # The files are a drift from what the agent wrote, which its last report names. Only when that is
    # the current version may they be kept as a drift from it: an upload that crossed a newer publish
    # holds the older version's files, and adopting them over the newer one would undo it.
    applied = (
        LiveApplication.objects.filter(environment=environment, application=module.application)
        .values_list("applied", flat=True)
        .first()
    )
    if (applied or {}).get(module.name) != deployed.tree_hash:
        raise NotApplied(
            f"The agents of {environment.name} have not reported applying {module.name} v{deployed.number}, "
            "the version current there, so these files are no drift from it; nothing was kept. The agent "
            "applies it at its next pass."
        )
    manifest = {path: content_hash(data) for path, data in files.items()}
    found = tree_hash(manifest)
    if found == deployed.tree_hash:
        return None
    now = timezone.now()
    with transaction.atomic():
        store_blobs(files)
        drift = _open_drift(environment, module)
        if drift is None:
            try:
                with transaction.atomic():
                    drift = Drift.objects.create(
                        environment=environment,
                        module=module,
                        deployed_version=deployed,
                        manifest=manifest,
                        tree_hash=found,
                        found_at=now,
                    )
            except IntegrityError:
                # Another upload opened it a moment ago (one_open_drift_per_module_environment).
                drift = _open_drift(environment, module)
                if drift is None:
                    raise
            else:
                logger.info("Drift %s of %s found in %s", drift.pk, module.name, environment.name)
                audit.record(
                    AuditEvent.Action.DRIFT_FOUND,
                    user=_actor(token),
                    environment=environment,
                    application=module.application,
                    summary=(
                        f"Drift of {module.name} found in {environment.name} by agent token {token.name!r}: "
                        f"{len(manifest)} files differ from v{deployed.number}"
                    ),
                    after={"module": module.name, "version": deployed.number, "tree_hash": found},
                )
                return drift
        if (drift.tree_hash, drift.deployed_version_id) != (found, deployed.pk):
            drift.manifest, drift.tree_hash, drift.deployed_version = manifest, found, deployed
            drift.save(update_fields=["manifest", "tree_hash", "deployed_version"])
        return drift


def _open_drift(environment, module) -> Drift | None:
    return (
        Drift.objects.select_for_update()
        .filter(environment=environment, module=module, resolved_at__isnull=True)
        .first()
    )


# A webhook receiver's answer.


def record_delivery(token: AgentToken, deployment_id: int, payload) -> Deployment:
    """A webhook receiver says how the delivery of a deployment into its environment went.

    Http404 for a deployment of another environment (as for a missing one);
    NotWaiting when it no longer waits for its delivery.
    """
    payload = _object(payload, "The answer", {"status", "output"}, {"status"})
    status = payload["status"]
    if status not in ("succeeded", "failed"):
        given = repr(status[:40]) if isinstance(status, str) else _kind(status)
        raise ReportRejected(f"status must be 'succeeded' or 'failed', not {given}.")
    output = payload.get("output", "")
    if not isinstance(output, str):
        raise ReportRejected(f"output must be a string, not {_kind(output)}.")
    deployment = (
        Deployment.objects.select_related("target").filter(pk=deployment_id, target=token.environment).first()
    )
    if deployment is None:
        raise Http404(f"There is no deployment {deployment_id} into {token.environment.name}.")
    if deployment.status != Deployment.Status.WAITING:
        raise NotWaiting(
            f"Deployment {deployment.pk} is {deployment.status_label.lower()}: it no longer waits "
            "for its delivery."
        )
    if not confirming.webhook_result(deployment, status == "succeeded", kept_output(output)):
        raise NotWaiting(f"Deployment {deployment.pk} ended meanwhile; the answer changed nothing.")
    return deployment
