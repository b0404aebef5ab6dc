"""Deployment history, a deployment's live log, and blocking applications from deployment."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.db.models.fields.json import KT
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from lifecycle import access, blocking
from lifecycle.delivery import confirming
from lifecycle.deploying import leases, plans
from lifecycle.deploying.validation import DeploymentRefused
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import (
    AccessLevel,
    Application,
    ApplicationBlock,
    Deployment,
    DeploymentItem,
    Environment,
)
from lifecycle.request_values import parse_id

PER_PAGE = 50
APPLICATION_HISTORY_LENGTH = 10
SEVERITY_LABELS = {
    "error": "Error",
    "confirm": "Needs Deploy anyway",
    "warning": "Warning",
    "info": "Info",
}


def _visible_or_403(user):
    environments = access.visible_environments(user)
    if not environments:
        raise PermissionDenied(
            "You have no access to any environment yet. Ask an administrator to add you to a group."
        )
    return environments


def elapsed_seconds(deployment, now=None) -> float:
    """How many seconds the deployment took, or has been running."""
    end = deployment.finished_at or now or timezone.now()
    return max((end - deployment.started_at).total_seconds(), 0)


def duration_label(deployment, now=None) -> str:
    """How long the deployment took, or has been running. static/js/stageboard.js words it alike."""
    seconds = elapsed_seconds(deployment, now)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _touching(application_ids):
    """Deployments of any of these applications: done (an item) or asked for (failed or still running).

    Items are written only when a deployment succeeds, so the applications it was asked to deploy
    are read from `requested`. JSON containment is not available on SQLite: match the id in the
    array's text instead ("[3, 12]" on PostgreSQL, "[3,12]" on SQLite).
    """
    ids = "|".join(str(int(pk)) for pk in application_ids)
    done = Exists(
        DeploymentItem.objects.filter(deployment=OuterRef("pk"), application_id__in=application_ids)
    )
    return done | Q(requested_applications__regex=rf"(\[|,| )({ids})(,|\])")


def _with_requested(deployments):
    return deployments.alias(requested_applications=KT("requested__applications"))


def _requested_ids(deployment) -> list[int]:
    requested = deployment.requested if isinstance(deployment.requested, dict) else {}
    ids = requested.get("applications") or []
    return [pk for pk in ids if isinstance(pk, int)]


def _requested_number(deployment, application_id) -> str:
    requested = deployment.requested if isinstance(deployment.requested, dict) else {}
    numbers = requested.get("numbers") or {}
    return str(numbers.get(str(application_id), "")) if isinstance(numbers, dict) else ""


def _describe_applications(deployments):
    """Per deployment, what it deployed (its items) or, when it has none yet, what it was asked to deploy.

    One query for the names of requested applications, whatever the number of deployments.
    """
    wanted = {
        pk for deployment in deployments if not deployment.items.all() for pk in _requested_ids(deployment)
    }
    names = dict(Application.objects.filter(pk__in=wanted).values_list("pk", "name")) if wanted else {}
    for deployment in deployments:
        items = deployment.items.all()
        if items:
            deployment.applications = [
                {
                    "pk": item.application_id,
                    "name": item.application.name,
                    "number": item.tag.number if item.tag else "",
                    "tagged": item.tagged,
                    "done": True,
                }
                for item in items
            ]
        else:
            deployment.applications = [
                {
                    "pk": pk,
                    "name": names[pk],
                    "number": _requested_number(deployment, pk),
                    "tagged": False,
                    "done": False,
                }
                for pk in _requested_ids(deployment)
                if pk in names
            ]


# The deployments page.


def _filters(request, environments):
    environment = request.GET.get("environment", "")
    status = request.GET.get("status", "")
    visible = {str(e.pk): e.pk for e in environments}
    return {
        "application": request.GET.get("application", "").strip()[:100],
        "environment": visible.get(environment),
        "user": request.GET.get("user", "").strip()[:150],
        "status": status if status in Deployment.Status.values else "",
    }


def _filtered(filters, environments):
    deployments = _with_requested(Deployment.objects.filter(target__in=environments))
    if filters["application"]:
        ids = list(
            Application.objects.filter(name__icontains=filters["application"]).values_list("pk", flat=True)
        )
        deployments = deployments.filter(_touching(ids)) if ids else deployments.none()
    if filters["environment"]:
        deployments = deployments.filter(target_id=filters["environment"])
    if filters["user"]:
        deployments = deployments.filter(started_by__username__icontains=filters["user"])
    if filters["status"]:
        deployments = deployments.filter(status=filters["status"])
    return deployments


@login_required
@require_GET
def deployment_list(request: HtmxHttpRequest):
    environments = _visible_or_403(request.user)
    filters = _filters(request, environments)
    deployments = (
        _filtered(filters, environments)
        .select_related("source", "target", "started_by")
        .prefetch_related(
            Prefetch(
                "items",
                queryset=DeploymentItem.objects.select_related("application", "tag").order_by(
                    "application__name"
                ),
            )
        )
        .order_by("-started_at", "-id")
    )
    page = Paginator(deployments, PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    _describe_applications(rows)
    now = timezone.now()
    for deployment in rows:
        deployment.elapsed = elapsed_seconds(deployment, now)
        deployment.duration = duration_label(deployment, now)
    context = {
        "environments": environments,
        "filters": filters,
        "statuses": Deployment.Status.choices,
        "page": page,
        "deployments": rows,
        "filtered": any(filters.values()),
    }
    return render(request, page_or_partial(request, "lifecycle/deployments.html", "deployments"), context)


# One deployment and its live log.


def _deployment_context(request, deployment_id: int, log_after: int = 0, **extra) -> dict:
    # A deployment whose worker stopped, or whose delivery is overdue, ends here rather than
    # showing "running" until someone starts another one (lifecycle/deploying/leases.py).
    leases.sweep(deployment_id=deployment_id)
    deployment = get_object_or_404(
        Deployment.objects.select_related("source", "target", "started_by", "plan").prefetch_related(
            Prefetch(
                "items",
                queryset=DeploymentItem.objects.select_related("application", "tag", "previous_tag").order_by(
                    "application__name"
                ),
            ),
        ),
        pk=deployment_id,
    )
    access.require(request.user, deployment.target, AccessLevel.VIEW)
    _describe_applications([deployment])
    now = timezone.now()
    deployment.elapsed = elapsed_seconds(deployment, now)
    deployment.duration = duration_label(deployment, now)
    findings = deployment.findings if isinstance(deployment.findings, list) else []
    items = deployment.items.all()
    # Finished with errors: apply it again, or go back with the rollback flow (both need deploy access).
    offer = deployment.status == Deployment.Status.ERRORS and access.can(
        request.user, deployment.target, AccessLevel.DEPLOY
    )
    return {
        "deployment": deployment,
        "items": items,
        # A poll of a running deployment reads only the lines after the last one it shows.
        "log_after": log_after,
        # The poll that sees it over gets the whole log: it replaces the section.
        "log_lines": deployment.log_lines.filter(pk__gt=log_after if deployment.is_running else 0),
        # A plan is seen only by those who see both its environments (lifecycle.deploying.plans).
        "plan_shown": deployment.plan is not None and plans.can_see(request.user, deployment.plan),
        "findings": [
            {**finding, "label": SEVERITY_LABELS.get(finding.get("severity"), finding.get("severity", ""))}
            for finding in findings
            if isinstance(finding, dict)
        ],
        "can_retry": offer,
        "rollbacks": [item for item in items if item.previous_tag_id] if offer else [],
        **extra,
    }


def _render_deployment(request, context, status=200):
    template = page_or_partial(request, "lifecycle/deployment.html", "log")
    polling = template.endswith("#log") and "log_after" in request.GET
    if status == 200 and polling and context["deployment"].is_running:
        # A poll while it runs: only the new lines, appended out of band; the log itself stays.
        response = render(request, "lifecycle/deployment.html#log_more", context)
        response["HX-Reswap"] = "none"
        return response
    if status == 200 and template.endswith("#log") and not context["deployment"].is_running:
        # The poll that sees the deployment over gets its final state and stops polling.
        return HttpResponseStopPolling(render_to_string(template, context, request))
    return render(request, template, context, status=status)


@login_required
@require_GET
def deployment_detail(request: HtmxHttpRequest, deployment_id: int):
    # The id of the last log line the page shows (static/js/stageboard.js adds it to each poll).
    log_after = (parse_id(request.GET.get("log_after")) or 0) if request.htmx else 0
    return _render_deployment(request, _deployment_context(request, deployment_id, log_after=log_after))


@login_required
@require_POST
def deployment_retry(request: HtmxHttpRequest, deployment_id: int):
    """Retry a deployment that finished with errors: its machines apply it again (confirming.retry)."""
    deployment = get_object_or_404(Deployment.objects.select_related("target"), pk=deployment_id)
    access.require(request.user, deployment.target, AccessLevel.VIEW)
    try:
        confirming.retry(deployment, request.user)
    except DeploymentRefused as refusal:
        context = _deployment_context(
            request, deployment_id, retry_error=f"Not retried: {refusal}", answering_retry=True
        )
        return _render_deployment(request, context, status=409)
    if request.htmx:
        # The log (with the status, items and actions out of band) polls again while it waits;
        # a refusal an earlier click left on the page is cleared.
        return _render_deployment(request, _deployment_context(request, deployment_id, answering_retry=True))
    messages.success(
        request, f"Retried deployment {deployment.pk}: {deployment.target.name} applies it again."
    )
    return redirect("lifecycle:deployment", deployment.pk)


# Blocking, on the application's page.


def application_history_context(application, environments, user=None) -> dict:
    """What the application page shows of deployments and blocks; three queries whatever the history.

    `deployments`: the application's recent deployments into `environments`, each with the
    application's `item` (None when it failed or is still running) and its `number`.
    `blocks`: environment id -> the active block there. `blocking`: per environment, its block
    and whether `user` may block or unblock there.
    """
    deployments = list(
        _with_requested(Deployment.objects.filter(target__in=environments))
        .filter(_touching([application.pk]))
        .select_related("source", "target", "started_by")
        .prefetch_related(
            Prefetch(
                "items",
                queryset=DeploymentItem.objects.filter(application=application).select_related("tag"),
                to_attr="application_items",
            )
        )
        .order_by("-started_at", "-id")[:APPLICATION_HISTORY_LENGTH]
    )
    for deployment in deployments:
        deployment.item = deployment.application_items[0] if deployment.application_items else None
        deployment.number = (
            deployment.item.tag.number
            if deployment.item and deployment.item.tag
            else _requested_number(deployment, application.pk)
        )
    blocks = {
        block.environment_id: block
        for block in ApplicationBlock.objects.filter(
            application=application, environment__in=environments, unblocked_at__isnull=True
        ).select_related("blocked_by")
    }
    return {
        "deployments": deployments,
        "blocks": blocks,
        "blocking": [
            {
                "environment": environment,
                "block": blocks.get(environment.pk),
                "can_block": user is not None and access.can(user, environment, AccessLevel.FULL),
            }
            for environment in environments
        ],
    }


def _blockable(user, application_id, environment_id):
    """The application and environment of a block URL, or 404/403: full access is needed."""
    application = get_object_or_404(Application, pk=application_id)
    environment = get_object_or_404(Environment, pk=environment_id)
    access.require(user, environment, AccessLevel.FULL)
    return application, environment


def _answer_block(request, application, *, done: str = "", error: str = "") -> HttpResponse:
    if request.htmx or error:
        # htmx swaps the section in place. A refusal without htmx is a 422 page with the section and
        # its message, never a redirect that would look like success to anything but a person.
        context = {
            "application": application,
            **application_history_context(application, _visible_or_403(request.user), request.user),
            "blocking_done": done,
            "blocking_error": error,
        }
        template = "lifecycle/application.html#blocking" if request.htmx else "lifecycle/blocking.html"
        return render(request, template, context, status=422 if error else 200)
    messages.success(request, done)
    return redirect(reverse("lifecycle:application", args=[application.pk]) + "#blocking")


@login_required
@require_POST
def block_application(request: HtmxHttpRequest, application_id: int, environment_id: int):
    application, environment = _blockable(request.user, application_id, environment_id)
    try:
        blocking.block(application, environment, request.user, request.POST.get("reason", ""))
    except blocking.BlockError as error:
        return _answer_block(request, application, error=f"Not blocked: {error}")
    return _answer_block(
        request,
        application,
        done=f"Blocked {application.name} in {environment.name}: deployments of it into "
        f"{environment.name} are refused until it is unblocked.",
    )


@login_required
@require_POST
def unblock_application(request: HtmxHttpRequest, application_id: int, environment_id: int):
    application, environment = _blockable(request.user, application_id, environment_id)
    try:
        blocking.unblock(application, environment, request.user, request.POST.get("reason", ""))
    except blocking.BlockError as error:
        return _answer_block(request, application, error=f"Not unblocked: {error}")
    return _answer_block(
        request,
        application,
        done=f"Unblocked {application.name} in {environment.name}: it may be deployed again.",
    )
