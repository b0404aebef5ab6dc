"""The drift page: the files an agent found on a machine, as a diff from the deployed version; two actions.

Seen with view access on the drift's environment (404 otherwise, like a drift
that does not exist). Adopt as hotfix and Redeploy need publish access there;
lifecycle/delivery/drift.py checks it and does each at most once.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from hotfixes.engine.linediff import diff_lines
from hotfixes.engine.treediff import diff_trees
from hotfixes.models import Hotfix
from lifecycle import access
from lifecycle.archives import ArchiveRejected
from lifecycle.delivery import drift as drifts
from lifecycle.htmx import HtmxHttpRequest
from lifecycle.models import AccessLevel, Blob, CurrentVersion, Drift
from lifecycle.publishing import MAX_COMMENT, StaleEdit


def _drift_for(user, drift_id) -> Drift:
    """The drift of a URL, or 404 when it does not exist or the user cannot see its environment."""
    drift = get_object_or_404(
        Drift.objects.select_related(
            "environment", "module__application", "deployed_version", "resolved_by", "adopted_version"
        ),
        pk=drift_id,
    )
    access.require(user, drift.environment, AccessLevel.VIEW)
    return drift


def _files(drift: Drift) -> list[dict]:
    """The deployed version's files against those found on the machine, skipping equal hashes."""
    changes = diff_trees(drift.deployed_version.manifest(), drift.manifest)
    wanted = {digest for change in changes for digest in (change.old_hash, change.new_hash) if digest}
    content = {
        digest: bytes(data)
        for digest, data in Blob.objects.filter(hash__in=wanted).values_list("hash", "data")
    }
    return [
        {
            "path": change.path,
            "status": change.status,
            "diff": diff_lines(content.get(change.old_hash), content.get(change.new_hash)),
            "sizes": [len(content[h]) if h in content else None for h in (change.old_hash, change.new_hash)],
        }
        for change in changes
    ]


def _render(request, drift: Drift, *, error: str | None = None, comment: str = "", status: int = 200):
    current = (
        CurrentVersion.objects.filter(environment=drift.environment, module=drift.module)
        .select_related("version", "changed_by")
        .first()
    )
    hotfix = None
    if drift.resolution == Drift.Resolution.ADOPTED:
        hotfix = (
            Hotfix.objects.filter(application=drift.module.application, environment=drift.environment)
            .filter(changes__version=drift.adopted_version)
            .first()
        )
    context = {
        "drift": drift,
        "module": drift.module,
        "application": drift.module.application,
        "environment": drift.environment,
        "deployed": drift.deployed_version,
        # Another version current since the drift was found: adopting it would overwrite that.
        "current": current.version if current else None,
        "files": _files(drift),
        "hotfix": hotfix,
        "resolution": drifts.resolution_text(drift) if drift.resolved_at else "",
        "can_act": drift.resolved_at is None
        and access.can(request.user, drift.environment, AccessLevel.PUBLISH),
        "error": error,
        "comment": comment,
        "max_comment": MAX_COMMENT,
    }
    return render(request, "hotfixes/drift.html", context, status=status)


@login_required
@require_GET
def drift_detail(request: HtmxHttpRequest, drift_id: int):
    return _render(request, _drift_for(request.user, drift_id))


@login_required
@require_POST
def drift_adopt(request: HtmxHttpRequest, drift_id: int):
    drift = _drift_for(request.user, drift_id)
    comment = request.POST.get("comment", "")
    try:
        adopted = drifts.adopt(drift, request.user, comment=comment)
    except drifts.DriftResolved as resolved:
        return _render(request, resolved.drift, error=str(resolved), status=409)
    except StaleEdit as stale:
        return _render(request, drift, error=_stale_message(drift, stale), comment=comment, status=409)
    except (drifts.DriftNotAdoptable, ArchiveRejected) as refused:
        return _render(request, drift, error=str(refused), comment=comment, status=422)
    version = adopted.adopted_version
    messages.success(
        request,
        f"Adopted the files found on {adopted.environment.name}'s machines as {adopted.module.name} "
        f"v{version.number}"
        + (
            " (a hotfix: merge it back into the earlier environments)."
            if not adopted.environment.is_first()
            else "."
        ),
    )
    return redirect("hotfixes:drift", adopted.pk)


def _stale_message(drift: Drift, stale: StaleEdit) -> str:
    """Another version became current where the drift was found: adopting it would undo that one."""
    module, environment = drift.module, drift.environment
    current = stale.current
    if current is None:
        now = f"{module.name} no longer runs in {environment.name}"
    else:
        who = current.changed_by.get_username() if current.changed_by else "someone"
        now = f"{who} made {module.name} v{current.version.number} current in {environment.name}"
    return (
        f"{now} after this drift was found on v{drift.deployed_version.number}: it was not adopted, "
        "so as not to undo that change. The agents deliver what is current over the drift; look at "
        "what runs there now before adopting anything."
    )


@login_required
@require_POST
def drift_redeploy(request: HtmxHttpRequest, drift_id: int):
    drift = _drift_for(request.user, drift_id)
    try:
        redeployed = drifts.redeploy(drift, request.user)
    except drifts.DriftResolved as resolved:
        return _render(request, resolved.drift, error=str(resolved), status=409)
    messages.success(
        request,
        f"The agents of {redeployed.environment.name} will apply {redeployed.module.application.name} again "
        f"and overwrite the files found on the machine.",
    )
    return redirect("hotfixes:drift", redeployed.pk)
