"""Security tests: who may do what, CSRF, hostile input and escaping.

Shared here: a snapshot of
everything a change could write, the world each case starts from, and the table of every
changing action of the console (browser, htmx, JSON API and command line), which
`test_access_matrix` runs for every persona and environment and `test_csrf` runs with CSRF
checks enforced.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from hotfixes.merging import prepare
from hotfixes.models import Hotfix, HotfixChange, Merge, MergeItem
from lifecycle import audit, blocking
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.editing import add_file, open_draft
from lifecycle.models import (
    AccessLevel,
    ApiToken,
    ApplicationBlock,
    ApplicationTag,
    AuditEvent,
    Blob,
    CurrentVersion,
    Delivery,
    Deployment,
    DeploymentItem,
    DeploymentPlan,
    Draft,
    Drift,
    EnvironmentTag,
    LiveApplication,
    ModuleChange,
    ModuleVersion,
    PlanItem,
)
from lifecycle.publishing import store_blobs
from lifecycle.rollback import rollback_validation
from lifecycle.snapshots import tree_hash
from lifecycle.tagging import tag_environment
from lifecycle.tokens import create_token
from tests.editor_forms import draft_fields
from tests.factories import publish_files, released_application
from tests.zips import make_zip

VIEW, PUBLISH, DEPLOY, FULL = (int(level) for level in AccessLevel)
DEV, QA, PRE, PROD = range(4)
ENVIRONMENT_NAMES = ["Development", "Quality Assurance", "Pre-Production", "Production"]


class Levels(tuple):
    """A persona's level in each environment, in pipeline order (0: no access), and whether they are staff."""

    staff: bool

    def __new__(cls, levels, *, staff=False):
        self = super().__new__(cls, levels)
        self.staff = staff
        return self


# The personas, written out from the specification's level table (view < publish < deploy < full)
# so that the expectations never come from the code under test.
LEVELS = {
    "outsider": Levels((0, 0, 0, 0)),  # logged in, no access anywhere
    "viewer": Levels((VIEW, VIEW, VIEW, VIEW)),
    "publisher": Levels((PUBLISH, PUBLISH, PUBLISH, PUBLISH)),
    "developer": Levels((DEPLOY, DEPLOY, DEPLOY, VIEW)),
    "release_manager": Levels((FULL, FULL, FULL, FULL)),
    # An operator of the admin (view, add and change on the console's models and users), in no
    # group with access to any environment.
    "staff_without_access": Levels((0, 0, 0, 0), staff=True),
    "dev_only": Levels((VIEW, 0, 0, 0)),  # sees Development, nothing else
}
PERSONAS = tuple(LEVELS)

# What a rule expects of a request (a rule may also answer True for ALLOWED, False for FORBIDDEN).
ALLOWED = "allowed"  # 2xx/3xx (exit code 0) and the change made
FORBIDDEN = "403"  # 403 (a JSON 403 from the API, exit code 3 from a command), nothing written
HIDDEN = "404"  # 404: what the user may not see is not confirmed to exist; nothing written
UNSEEN = "403 or 404"  # either refusal, nothing written
REFUSED = "4xx"  # any 4xx (nobody may do it; the status depends on who asks), nothing written
NO_EFFECT = "no effect"  # any answer below 500, and nothing written


def expectation(rule, levels, index) -> str:
    verdict = rule(levels, index)
    return {True: ALLOWED, False: FORBIDDEN}.get(verdict, verdict)


# ---------------------------------------------------------------------------
# What a change could write


_COUNTED = {
    "versions": ModuleVersion,
    "blobs": Blob,
    "changes": ModuleChange,
    "tags": ApplicationTag,
    "deployments": Deployment,
    "hotfix_changes": HotfixChange,
    "merges": Merge,
    "merge_items": MergeItem,
    "plan_items": PlanItem,
}
_LISTED = {
    "current": (CurrentVersion, ["environment_id", "module_id", "version_id"]),
    "environment_tags": (EnvironmentTag, ["environment_id", "application_id", "tag_id"]),
    "hotfixes": (Hotfix, ["id", "solved_at", "solved_note"]),
    "blocks": (ApplicationBlock, ["id", "unblocked_at"]),
    "drafts": (Draft, ["id", "manifest", "comment"]),
    "tokens": (ApiToken, ["id", "user_id", "revoked_at"]),
    "plans": (DeploymentPlan, ["id", "name"]),
    "drifts": (Drift, ["id", "resolved_at", "resolution", "adopted_version_id"]),
    "live": (LiveApplication, ["id", "desired_generation"]),
}


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


def _comparable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def snapshot() -> dict[str, Any]:
    """Everything a change could write, in a form two calls can be compared with.

    Plain SQL, a query per table listed and one for every count: the matrix takes two snapshots
    in each of its cases, and the ORM's query building was a third of the suite's time.
    """
    with connection.cursor() as cursor:
        counted = ", ".join(f"(SELECT COUNT(*) FROM {_table(model)})" for model in _COUNTED.values())
        cursor.execute(f"SELECT {counted}")
        counts = dict(zip(_COUNTED, cursor.fetchone(), strict=True))
        rows = {}
        for key, (model, fields) in _LISTED.items():
            columns = ", ".join(connection.ops.quote_name(model._meta.get_field(f).column) for f in fields)
            order = "1" if fields[0] == "id" else ", ".join(str(n) for n in range(1, len(fields) + 1))
            cursor.execute(f"SELECT {columns} FROM {_table(model)} ORDER BY {order}")
            rows[key] = [tuple(map(_comparable, row)) for row in cursor.fetchall()]
    plans = rows.pop("plans")
    counted_alone = ("versions", "blobs", "changes", "tags", "deployments", "hotfix_changes")
    return {
        **{key: counts[key] for key in counted_alone},
        **rows,
        "merges": (counts["merges"], counts["merge_items"]),
        "plans": (plans, counts["plan_items"]),
    }


def differences(before: dict, after: dict) -> list[str]:
    return [key for key in before if before[key] != after[key]]


# ---------------------------------------------------------------------------
# The world a case starts from


@dataclass
class Ctx:
    """One case: the pipeline, the user acting, the application and what the action's setup made."""

    environments: list
    user: Any
    client: Any
    tmp_path: Any
    index: int | None = None
    application: Any = None
    module: Any = None
    tag: Any = None  # 0.3, deployed everywhere
    extra: dict = field(default_factory=dict)

    @property
    def env(self):
        return None if self.index is None else self.environments[self.index]

    def at(self, index):
        return self.environments[index]


def build_world(ctx: Ctx) -> Ctx:
    """App with one module App-Core (main.py), tagged 0.3 in Development and deployed everywhere."""
    ctx.application, (ctx.module,), ctx.tag = released_application("App", ctx.environments)
    return ctx


def change(module, environment, text="changed"):
    """Publish (as the system) a new version of `module` in `environment`; a hotfix outside the first."""
    return publish_files(module, environment, {"main.py": f"# {module.name}\nprint('{text}')\n"})


# ---------------------------------------------------------------------------
# Requests


@dataclass
class Req:
    method: str
    url: str
    data: Any = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)


def send(ctx: Ctx, request: Req, *, htmx=False, csrf: str | None = None, csrf_in="field"):
    """Send `request` with the case's client; `csrf` adds the token as a form field or header."""
    headers = dict(request.headers)
    if htmx:
        headers["HX-Request"] = "true"
    data = request.data
    if csrf is not None:
        if csrf_in == "header":
            headers["X-CSRFToken"] = csrf
        else:
            data = {**(data or {}), "csrfmiddlewaretoken": csrf}
    method = getattr(ctx.client, request.method)
    kwargs = {"headers": headers}
    if request.content_type:
        kwargs["content_type"] = request.content_type
    return method(request.url, {} if data is None else data, **kwargs)


def upload(name="module.zip", files=None, data=None):
    data = data if data is not None else make_zip(files or {"main.py": "print('uploaded')\n"})
    return SimpleUploadedFile(name, data, content_type="application/zip")


def run_command(ctx: Ctx, *args, **options) -> int:
    """A management command's exit code: 0, or the code of the CommandError it raised."""
    try:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    except CommandError as error:
        return error.returncode
    return 0


# ---------------------------------------------------------------------------
# Who may: each rule takes the persona's levels (in pipeline order) and the environment index.


def needs(level):
    """`level` in the case's environment. One the user cannot see at all, while seeing others, may
    answer 403 or 404: the specification asks 403 of a change refused and 404 of what is not seen."""

    def rule(levels, i):
        if levels[i] < VIEW:
            return UNSEEN
        return levels[i] >= level

    return rule


def unseen_unless(*conditions):
    """UNSEEN when an environment the action must see is invisible (404, or the "no access" 403)."""
    return UNSEEN if not all(conditions) else None


def logged_in(levels, i):
    return True


def sees_any(levels, i):
    return any(level >= VIEW for level in levels)


def deploy_rule(level):
    """View on the source (the environment before), `level` on the target."""
    return lambda levels, i: levels[i - 1] >= VIEW and levels[i] >= level


def merge_rule(levels, i):
    """Merging the next environment's changes into environment i: view on both, publish here."""
    return unseen_unless(levels[i + 1] >= VIEW, levels[i] >= VIEW) or levels[i] >= PUBLISH


def propagate_rule(levels, i):
    """The hotfix of environment i into every earlier one: view on it, publish on each."""
    return unseen_unless(levels[i] >= VIEW) or all(levels[j] >= PUBLISH for j in range(i))


def sees_two(levels, i):
    """The deploy dialog shows a source and a target: it needs two environments to see."""
    return sum(level >= VIEW for level in levels) >= 2


def auditor(levels, i):
    """The audit trail is read by staff and by users with full access somewhere (docs/security.md)."""
    return levels.staff or FULL in levels


def plan_rule(level):
    """A plan (environment i-1 to i) exists only for users who see both; using it needs `level` on i."""

    def rule(levels, i):
        if not any(levels):
            return UNSEEN  # the "no access to any environment" 403 comes first, or the plan's 404
        if levels[i - 1] < VIEW or levels[i] < VIEW:
            return HIDDEN
        return levels[i] >= level

    return rule


def version_seen_in(*where):
    """A version published in, or ever current in, the environments `where` (indexes).

    Seen with view on any of them; hidden (404) from users who see only other environments; a
    user who sees no environment at all gets the "no access to any environment" 403, or the 404.
    """

    def rule(levels, i):
        if any(levels[j] >= VIEW for j in where):
            return ALLOWED
        return HIDDEN if any(levels) else UNSEEN

    return rule


def nobody(verdict):
    return lambda levels, i: verdict


def views(index):
    """View on one fixed environment, whatever the case's environment: 404 (or the "no access"
    403) for those who cannot see it."""
    return lambda levels, i: unseen_unless(levels[index] >= VIEW) or True


def sees_pair(levels, i):
    """Compare or merge environment i and the next: both seen, or 404 (or the "no access" 403)."""
    return unseen_unless(levels[i] >= VIEW, levels[i + 1] >= VIEW) or True


# ---------------------------------------------------------------------------
# The actions


@dataclass(frozen=True)
class Action:
    name: str
    kind: str  # "browser", "api", "command" or "admin"
    environments: tuple  # indexes where the action applies; (None,) for actions outside environments
    rule: Callable  # (levels, index) -> True, False or one of ALLOWED, FORBIDDEN, HIDDEN, REFUSED, NO_EFFECT
    request: Callable[[Ctx], Req] | None = None  # browser, api and admin
    command: Callable[[Ctx], int] | None = None  # command
    setup: Callable[[Ctx], None] | None = None
    writes: tuple = ()  # snapshot keys an allowed action changes; () for pages that only read
    htmx: bool = False  # the htmx variant answers differently and is checked too
    post: bool = True  # a changing request (CSRF applies)
    # What the answer must (not) show the persona: (ctx, levels, body) -> None, asserting.
    check: Callable | None = None
    csrf: bool = True  # test_csrf posts it with a token and expects success: not for what nobody may do
    url_name: str | None = None  # a URL still being added: the case is skipped while it does not exist

    def __str__(self):
        return self.name


ALL = (DEV, QA, PRE, PROD)
NOT_FIRST = (QA, PRE, PROD)
NOT_LAST = (DEV, QA, PRE)


def module_url(name):
    return lambda c: reverse(f"lifecycle:{name}", args=[c.module.pk, c.env.pk])


def _draft_with_change(c):
    draft = open_draft(c.user, c.module, c.env)
    add_file(draft, "draft.py", b"x = 1\n")


def _editor_page_shown(c):
    """What the editor page's forms carry (the draft, its revision, the file's content hash), as
    when the user has the page open: without them every editor form is refused as stale."""
    c.extra["form"] = draft_fields(c.user, c.module, c.env, "main.py")


def _editor_page_with_change(c):
    _draft_with_change(c)
    _editor_page_shown(c)


def _editor_post(name, data=None):
    return lambda c: Req("post", module_url(name)(c), {**c.extra["form"], **(data or {})})


def _deploy_source_ahead(c):
    change(c.module, c.at(c.index - 1), "next")


def _deploy_request(c, **extra):
    source, target = c.at(c.index - 1), c.env
    fingerprint = validate(source, target, [c.application]).fingerprint
    data = {
        "source": source.pk,
        "target": target.pk,
        "application": c.application.pk,
        "fingerprint": fingerprint,
    }
    return Req("post", reverse("lifecycle:deploy-run"), {**data, **extra})


def _plan(c):
    c.extra["plan"] = DeploymentPlan.objects.create(
        name="Nightly", source=c.at(c.index - 1), target=c.env, created_by=c.user
    )


def _newer_tag_running(c):
    """0.4 made in Development and running in the case's environment, so 0.3 can be rolled back to."""
    dev = c.at(DEV)
    change(c.module, dev, "0.4")
    newer = tag_environment(c.application, dev, "0.4")
    if c.index != DEV:
        deploy_tag(newer, c.env)


def _rollback_request(c):
    fingerprint = rollback_validation(c.application, c.tag, c.env, "").fingerprint
    return Req(
        "post",
        reverse("lifecycle:rollback", args=[c.application.pk, c.tag.pk]),
        {"environment": c.env.pk, "number": "", "fingerprint": fingerprint, "deploy_anyway": "on"},
    )


def _blocked(c):
    """Blocked by someone allowed to: the persona under test may not be."""
    blocker = User.objects.filter(username="blocker").first() or User.objects.create_superuser(
        "blocker", password="x"
    )
    blocking.block(c.application, c.env, blocker, "release freeze")


def _next_env_hotfix(c):
    change(c.module, c.at(c.index + 1), "hotfix")


def _merge_request(c):
    source, target = c.at(c.index + 1), c.env
    fingerprint = prepare(c.application, source, target).fingerprint
    data = {
        "application": c.application.pk,
        "source": source.pk,
        "target": target.pk,
        "fingerprint": fingerprint,
        "action": "merge",
    }
    return Req("post", reverse("hotfixes:merge"), data)


def _hotfix_here(c):
    change(c.module, c.env, "hotfix")
    c.extra["hotfix"] = Hotfix.objects.open().get(application=c.application, environment=c.env)


def _propagate_request(c):
    hotfix = c.extra["hotfix"]
    module_ids = list(hotfix.changes.values_list("module_id", flat=True))
    fingerprints = [
        prepare(c.application, c.env, c.at(j), module_ids).fingerprint for j in reversed(range(c.index))
    ]
    return Req("post", reverse("hotfixes:propagate", args=[hotfix.pk]), {"fingerprint": fingerprints})


def _own_token(c):
    c.extra["token"], c.extra["raw"] = create_token(c.user, "CI")


def _deployment_here(c):
    c.extra["deployment"] = Deployment.objects.create(
        source=c.at(max(c.index - 1, 0)),
        target=c.env,
        started_by=c.user,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status=Deployment.Status.FINISHED,
    )


def _deployment_with_errors_here(c):
    """App 0.3 delivered by the case's environment's agent, whose hook failed: it offers Retry."""
    type(c.env).objects.filter(pk=c.env.pk).update(delivery=Delivery.AGENT)
    c.env.refresh_from_db()
    modules = dict(
        CurrentVersion.objects.filter(environment=c.env, module__application=c.application).values_list(
            "module__name", "version__tree_hash"
        )
    )
    c.extra["deployment"] = deployment = Deployment.objects.create(
        source=c.at(max(c.index - 1, 0)),
        target=c.env,
        started_by=c.user,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status=Deployment.Status.ERRORS,
        expected={c.application.name: {"generation": 0, "modules": modules}},
    )
    DeploymentItem.objects.create(
        deployment=deployment, application=c.application, tag=c.tag, modules_changed=1
    )


def _api_publish_request(c):
    url = reverse("api:publish", args=[c.module.name, c.env.name])
    body = make_zip({"main.py": "print('from the api')\n"})
    headers = {"Authorization": f"Bearer {c.extra['raw']}"}
    return Req("post", url, body, content_type="application/zip", headers=headers)


def _api_get(name, args):
    def request(c):
        return Req(
            "get", reverse(f"api:{name}", args=args(c)), headers={"Authorization": f"Bearer {c.extra['raw']}"}
        )

    return request


def _publish_command(c):
    c.tmp_path.mkdir(parents=True, exist_ok=True)  # made only by the cases that need it
    path = c.tmp_path / "module.zip"
    path.write_bytes(make_zip({"main.py": "print('from the command line')\n"}))
    return run_command(c, "publish", c.env.name, c.module.name, str(path), user=c.user.username)


def _download_command(c):
    c.tmp_path.mkdir(parents=True, exist_ok=True)
    return run_command(
        c, "download", c.env.name, c.module.name, str(c.tmp_path / "out.zip"), user=c.user.username
    )


def _get(url):
    return lambda c: Req("get", url(c))


def _foreign_plan(c):
    """The source ahead of the target, and a plan saved for another pair of environments."""
    _deploy_source_ahead(c)
    source, target = (c.at(QA), c.at(PRE)) if c.index == QA else (c.at(DEV), c.at(QA))
    c.extra["plan"] = DeploymentPlan.objects.create(
        name="Another pair's plan", source=source, target=target, created_by=c.user
    )


def _forward_merge_request(c):
    """Merging environment i's changes into the next one: forward, which only Tag & Deploy may do."""
    source, target = c.env, c.at(c.index + 1)
    try:
        fingerprint = prepare(c.application, source, target).fingerprint
    except Exception:  # a domain that refuses to prepare it at all is right too
        fingerprint = ""
    data = {
        "application": c.application.pk,
        "source": source.pk,
        "target": target.pk,
        "fingerprint": fingerprint,
        "action": "merge",
    }
    return Req("post", reverse("hotfixes:merge"), data)


# The audit trail: one line per environment, and account events (a failed login, a token made and
# revoked) that only superusers may read.
AUDIT_ENVIRONMENT_MARKERS = [f"audit-marker-env{i}-" for i in range(4)]
AUDIT_ACCOUNT_MARKERS = ["audit-marker-login-", "audit-marker-token-made-", "audit-marker-token-revoked-"]


def record_audit_trail(c):
    for environment, marker in zip(c.environments, AUDIT_ENVIRONMENT_MARKERS, strict=True):
        audit.record(
            AuditEvent.Action.PUBLISH, environment=environment, application=c.application, summary=marker
        )
    actions = (
        AuditEvent.Action.LOGIN_FAILED,
        AuditEvent.Action.TOKEN_CREATED,
        AuditEvent.Action.TOKEN_REVOKED,
    )
    for action, marker in zip(actions, AUDIT_ACCOUNT_MARKERS, strict=True):
        audit.record(action, user="someone", summary=marker, ip="203.0.113.9")


def shows_only_visible_audit_rows(c, levels, body):
    """Rows of the environments the persona can view, and account events for superusers only."""
    for level, marker in zip(levels, AUDIT_ENVIRONMENT_MARKERS, strict=True):
        if level >= VIEW:
            assert marker.encode() in body, f"the audit trail lacks a row the user may see: {marker}"
        else:
            assert marker.encode() not in body, (
                f"the audit trail shows a row of a hidden environment: {marker}"
            )
    for marker in AUDIT_ACCOUNT_MARKERS:
        assert marker.encode() not in body, (
            f"the audit trail shows an account event to a non-superuser: {marker}"
        )


# A version that exists only in Production, published there as a hotfix: a user who cannot view
# Production must not learn anything of it, by any page, fragment, download, diff or API.
HIDDEN_CONTENT, HIDDEN_COMMENT = "PRODONLY-SECRET", "prod-only-comment"


def production_only_version(c):
    c.extra["hidden"] = publish_files(
        c.module, c.at(PROD), {"main.py": f"print('{HIDDEN_CONTENT}')\n"}, comment=HIDDEN_COMMENT
    ).number
    c.extra["hotfix"] = Hotfix.objects.open().get(application=c.application, environment=c.at(PROD))


def _hides_production(c, levels, body):
    if levels[PROD] >= VIEW:
        return
    for secret in (HIDDEN_CONTENT, HIDDEN_COMMENT):
        assert secret.encode() not in body, f"shown {secret!r} of a version only in Production"
    hotfix_url = reverse("hotfixes:hotfix", args=[c.extra["hotfix"].pk])
    assert hotfix_url.encode() not in body, "linked to the hotfix of Production"


def _dev_module_file(number):
    """The module page in Development showing one file of version `number` (with htmx: the fragment)."""
    return lambda c: Req(
        "get",
        reverse("lifecycle:module", args=[c.module.pk, c.at(DEV).pk]),
        {"version": number(c), "path": "main.py"},
    )


def _hidden(c):
    return c.extra["hidden"]


def _someone_else(c):
    """A superuser to mint a token for: the most valuable token there is."""
    root = User.objects.filter(username="root").first()
    c.extra["victim"] = root or User.objects.create_superuser("root", password="x")


def _own_token_and_someone_else(c):
    _own_token(c)
    _someone_else(c)


def _drift_here(c):
    """An agent found other files of App-Core in the case's environment (as its upload leaves them)."""
    manifest = store_blobs({"main.py": b"print('changed on the server')\n"})
    c.extra["drift"] = Drift.objects.create(
        environment=c.env,
        module=c.module,
        deployed_version=CurrentVersion.objects.get(module=c.module, environment=c.env).version,
        manifest=manifest,
        tree_hash=tree_hash(manifest),
        found_at=timezone.now(),
    )


def _drift_url(name):
    return lambda c: reverse(f"hotfixes:{name}", args=[c.extra["drift"].pk])


def _drift_url_post(name):
    return lambda c: Req("post", _drift_url(name)(c))


def hidden_unless_views(level):
    """`level` in the case's environment; what is in an environment the user cannot see is a 404."""
    return lambda levels, i: HIDDEN if levels[i] < VIEW else levels[i] >= level


def _admin_token_add(c):
    return Req("post", "/admin/lifecycle/apitoken/add/", {"user": c.extra["victim"].pk, "name": "minted"})


def _admin_token_reassign(c):
    token = c.extra["token"]
    data = {"user": c.extra["victim"].pk, "name": "renamed", "_save": "Save"}
    return Req("post", f"/admin/lifecycle/apitoken/{token.pk}/change/", data)


ACTIONS = [
    # Publish-level: the editor, zip upload, API and command line, in every environment.
    Action(
        "editor-save",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-save", {"path": "main.py", "content": "print('saved')\n"}),
        setup=_editor_page_shown,
        writes=("drafts",),
    ),
    Action(
        "editor-add",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-add", {"path": "added.py", "content": "x = 1\n"}),
        setup=_editor_page_shown,
        writes=("drafts",),
    ),
    Action(
        "editor-rename",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-rename", {"path": "main.py", "new_path": "renamed.py"}),
        setup=_editor_page_shown,
        writes=("drafts",),
    ),
    Action(
        "editor-delete",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-delete", {"path": "main.py"}),
        setup=_editor_page_shown,
        writes=("drafts",),
    ),
    Action(
        "editor-discard",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-discard"),
        setup=_editor_page_with_change,
        writes=("drafts",),
    ),
    Action(
        "editor-publish",
        "browser",
        ALL,
        needs(PUBLISH),
        _editor_post("editor-publish", {"comment": "from the editor"}),
        setup=_editor_page_with_change,
        writes=("versions", "current", "drafts"),
    ),
    Action(
        "module-upload",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("module-upload")(c), {"archive": upload(), "comment": "zip"}),
        writes=("versions", "current"),
    ),
    Action(
        "api-publish",
        "api",
        ALL,
        needs(PUBLISH),
        _api_publish_request,
        setup=_own_token,
        writes=("versions", "current"),
    ),
    Action(
        "command-publish",
        "command",
        ALL,
        needs(PUBLISH),
        command=_publish_command,
        writes=("versions", "current"),
    ),
    # Deploy-level: into every environment but the first, from the one before it.
    Action(
        "deploy-run",
        "browser",
        NOT_FIRST,
        deploy_rule(DEPLOY),
        _deploy_request,
        setup=_deploy_source_ahead,
        writes=("deployments", "current", "tags"),
        htmx=True,
    ),
    Action(
        "deploy-anyway",
        "browser",
        NOT_FIRST,
        deploy_rule(FULL),
        lambda c: _deploy_request(c, deploy_anyway="on"),
        setup=lambda c: change(c.module, c.env, "target's own change"),
        writes=("deployments", "current"),
        htmx=True,
    ),
    Action(
        "plan-save",
        "browser",
        NOT_FIRST,
        deploy_rule(DEPLOY),
        lambda c: Req(
            "post",
            reverse("lifecycle:plan-save"),
            {
                "source": c.at(c.index - 1).pk,
                "target": c.env.pk,
                "application": c.application.pk,
                "name": "Nightly",
            },
        ),
        writes=("plans",),
    ),
    Action(
        "plan-delete",
        "browser",
        NOT_FIRST,
        plan_rule(DEPLOY),
        lambda c: Req("post", reverse("lifecycle:plan-delete", args=[c.extra["plan"].pk])),
        setup=_plan,
        writes=("plans",),
    ),
    # Rolling back always undoes what came after, so it needs "Deploy anyway", so full access.
    Action(
        "rollback",
        "browser",
        ALL,
        needs(FULL),
        _rollback_request,
        setup=_newer_tag_running,
        writes=("deployments", "current", "tags"),
    ),
    # Full: blocking and Mark Hotfix as Solved.
    Action(
        "block",
        "browser",
        ALL,
        needs(FULL),
        lambda c: Req(
            "post", reverse("lifecycle:block", args=[c.application.pk, c.env.pk]), {"reason": "freeze"}
        ),
        writes=("blocks",),
        htmx=True,
    ),
    Action(
        "unblock",
        "browser",
        ALL,
        needs(FULL),
        lambda c: Req(
            "post", reverse("lifecycle:unblock", args=[c.application.pk, c.env.pk]), {"reason": "thaw"}
        ),
        setup=_blocked,
        writes=("blocks",),
        htmx=True,
    ),
    Action(
        "mark-solved",
        "browser",
        NOT_FIRST,
        needs(FULL),
        lambda c: Req("post", reverse("hotfixes:solve", args=[c.extra["hotfix"].pk]), {"confirm": "yes"}),
        setup=_hotfix_here,
        writes=("hotfixes",),
    ),
    # Merging backward: publish on the target, view on the source.
    Action(
        "merge",
        "browser",
        NOT_LAST,
        merge_rule,
        _merge_request,
        setup=_next_env_hotfix,
        writes=("merges", "versions", "current"),
    ),
    Action(
        "propagate",
        "browser",
        NOT_FIRST,
        propagate_rule,
        _propagate_request,
        setup=_hotfix_here,
        writes=("merges", "versions", "current"),
    ),
    # A user's own API tokens: no environment involved, any logged-in user.
    Action(
        "token-create",
        "browser",
        (None,),
        logged_in,
        lambda c: Req("post", reverse("tokens:create"), {"name": "CI"}),
        writes=("tokens",),
    ),
    Action(
        "token-revoke",
        "browser",
        (None,),
        logged_in,
        lambda c: Req("post", reverse("tokens:revoke", args=[c.extra["token"].pk])),
        setup=_own_token,
        writes=("tokens",),
    ),
    # Pages. Opening the editor starts a draft, so it needs publish.
    Action(
        "editor-page",
        "browser",
        ALL,
        needs(PUBLISH),
        _get(module_url("editor")),
        writes=("drafts",),
        post=False,
    ),
    Action("module-page", "browser", ALL, needs(VIEW), _get(module_url("module")), post=False),
    Action(
        "module-download",
        "browser",
        ALL,
        needs(VIEW),
        lambda c: Req("get", reverse("lifecycle:module-download", args=[c.module.pk, c.env.pk, 1])),
        post=False,
    ),
    Action(
        "hotfix-page",
        "browser",
        NOT_FIRST,
        needs(VIEW),
        _get(lambda c: reverse("hotfixes:hotfix", args=[c.extra["hotfix"].pk])),
        setup=_hotfix_here,
        post=False,
    ),
    Action(
        "propagate-page",
        "browser",
        NOT_FIRST,
        needs(VIEW),
        _get(lambda c: reverse("hotfixes:propagate", args=[c.extra["hotfix"].pk])),
        setup=_hotfix_here,
        post=False,
    ),
    Action(
        "deployment-page",
        "browser",
        ALL,
        needs(VIEW),
        _get(lambda c: reverse("lifecycle:deployment", args=[c.extra["deployment"].pk])),
        setup=_deployment_here,
        post=False,
    ),
    # Retry a deployment that finished with errors: deploy access on its target (404 unseen).
    Action(
        "retry-deployment",
        "browser",
        ALL,
        needs(DEPLOY),
        lambda c: Req("post", reverse("lifecycle:deployment-retry", args=[c.extra["deployment"].pk])),
        setup=_deployment_with_errors_here,
        writes=("live",),
        htmx=True,  # the log fragment, polling again
    ),
    Action(
        "compare-page",
        "browser",
        NOT_LAST,
        sees_pair,
        lambda c: Req(
            "get",
            reverse("hotfixes:compare"),
            {"application": c.application.pk, "source": c.env.pk, "target": c.at(c.index + 1).pk},
        ),
        post=False,
    ),
    Action(
        "merge-page",
        "browser",
        NOT_LAST,
        sees_pair,
        lambda c: Req(
            "get",
            reverse("hotfixes:merge"),
            {"application": c.application.pk, "source": c.at(c.index + 1).pk, "target": c.env.pk},
        ),
        setup=_next_env_hotfix,
        post=False,
    ),
    Action(
        "api-environment-archive",
        "api",
        ALL,
        needs(VIEW),
        _api_get("environment-archive", lambda c: [c.module.name, c.env.name]),
        setup=_own_token,
        post=False,
    ),
    Action("command-download", "command", ALL, needs(VIEW), command=_download_command, post=False),
    Action(
        "pipeline-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:pipeline")),
        htmx=True,  # the grid's fragment
        post=False,
    ),
    Action(
        "application-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:application", args=[c.application.pk])),
        post=False,
    ),
    Action(
        "deploy-page", "browser", (None,), sees_two, _get(lambda c: reverse("lifecycle:deploy")), post=False
    ),
    Action(
        "deployments-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:deployments")),
        post=False,
    ),
    Action(
        "rollback-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:rollback", args=[c.application.pk, c.tag.pk])),
        post=False,
    ),
    Action(
        "diff-page",
        "browser",
        (None,),
        sees_any,
        lambda c: Req("get", reverse("hotfixes:diff", args=[c.module.pk, 1, 2])),
        setup=lambda c: change(c.module, c.at(DEV)),
        post=False,
    ),
    Action(
        "api-application",
        "api",
        (None,),
        sees_any,
        _api_get("application", lambda c: [c.application.name]),
        setup=_own_token,
        post=False,
    ),
    Action(
        "api-version-archive",
        "api",
        (None,),
        sees_any,
        _api_get("version-archive", lambda c: [c.module.name, 1]),
        setup=_own_token,
        post=False,
    ),
    Action(
        "plan-page",
        "browser",
        NOT_FIRST,
        plan_rule(VIEW),
        _get(lambda c: reverse("lifecycle:plan", args=[c.extra["plan"].pk])),
        setup=_plan,
        post=False,
    ),
    Action(
        "compare-file-page",
        "browser",
        NOT_LAST,
        sees_pair,
        lambda c: Req(
            "get",
            reverse("hotfixes:compare-file"),
            {
                "application": c.application.pk,
                "source": c.env.pk,
                "target": c.at(c.index + 1).pk,
                "module": c.module.pk,
                "version": 2,
                "base": 1,
                "path": "main.py",
            },
        ),
        setup=_next_env_hotfix,
        post=False,
    ),
    Action("tokens-page", "browser", (None,), logged_in, _get(lambda c: reverse("tokens:list")), post=False),
    # The audit trail: staff and users with full access somewhere; each sees the rows of the
    # environments they can view, and account events are for superusers only.
    Action(
        "audit-page",
        "browser",
        (None,),
        auditor,
        _get(lambda c: reverse("lifecycle:audit")),
        setup=record_audit_trail,
        check=shows_only_visible_audit_rows,
        post=False,
    ),
    Action(
        "audit-export",
        "browser",
        (None,),
        auditor,
        _get(lambda c: reverse("lifecycle:audit-export")),
        setup=record_audit_trail,
        check=shows_only_visible_audit_rows,
        post=False,
    ),
    Action(
        "module-file",
        "browser",
        ALL,
        needs(VIEW),
        lambda c: Req("get", module_url("module")(c), {"version": 1, "path": "main.py"}),
        htmx=True,  # the file fragment
        post=False,
    ),
    Action(
        "hotfix-list",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("hotfixes:list")),
        post=False,
        url_name="hotfixes:list",
    ),
    # Drift found by an agent: seen with view there (404 otherwise), adopted or redeployed over with publish.
    Action(
        "drift-page",
        "browser",
        ALL,
        hidden_unless_views(VIEW),
        _get(_drift_url("drift")),
        setup=_drift_here,
        post=False,
    ),
    Action(
        "drift-adopt",
        "browser",
        ALL,
        hidden_unless_views(PUBLISH),
        lambda c: Req("post", _drift_url("drift-adopt")(c), {"comment": "adopted"}),
        setup=_drift_here,
        writes=("versions", "current", "drifts"),
    ),
    Action(
        "drift-redeploy",
        "browser",
        ALL,
        hidden_unless_views(PUBLISH),
        _drift_url_post("drift-redeploy"),
        setup=_drift_here,
        writes=("drifts", "live"),
    ),
    # Nobody may: a plan saved for another pair of environments, and merging forward (changes
    # move forward only by Tag & Deploy).
    Action(
        "deploy-run-foreign-plan",
        "browser",
        NOT_FIRST,
        nobody(REFUSED),
        lambda c: _deploy_request(c, plan=c.extra["plan"].pk),
        setup=_foreign_plan,
        csrf=False,
    ),
    Action(
        "merge-forward",
        "browser",
        NOT_LAST,
        nobody(REFUSED),
        _forward_merge_request,
        setup=lambda c: change(c.module, c.env, "not yet deployed"),
        csrf=False,
    ),
    # A version only in Production: every read of it answers 404 to a user who cannot view
    # Production, and no page lists it, its comment or its hotfix.
    Action(
        "hidden-version-file",
        "browser",
        (None,),
        version_seen_in(PROD),
        _dev_module_file(_hidden),
        setup=production_only_version,
        check=_hides_production,
        htmx=True,
        post=False,
    ),
    Action(
        "hidden-version-download",
        "browser",
        (None,),
        version_seen_in(PROD),
        lambda c: Req(
            "get", reverse("lifecycle:module-download", args=[c.module.pk, c.at(DEV).pk, _hidden(c)])
        ),
        setup=production_only_version,
        post=False,
    ),
    Action(
        "hidden-version-diff",
        "browser",
        (None,),
        version_seen_in(PROD),
        lambda c: Req("get", reverse("hotfixes:diff", args=[c.module.pk, 1, _hidden(c)])),
        setup=production_only_version,
        check=_hides_production,
        post=False,
    ),
    Action(
        "hidden-version-compare-file",
        "browser",
        (None,),
        version_seen_in(PROD),
        lambda c: Req(
            "get",
            reverse("hotfixes:compare-file"),
            {
                "application": c.application.pk,
                "source": c.at(DEV).pk,
                "target": c.at(DEV).pk,
                "module": c.module.pk,
                "version": _hidden(c),
                "base": 1,
                "path": "main.py",
            },
        ),
        setup=production_only_version,
        check=_hides_production,
        post=False,
    ),
    Action(
        "hidden-version-api-archive",
        "api",
        (None,),
        version_seen_in(PROD),
        _api_get("version-archive", lambda c: [c.module.name, c.extra["hidden"]]),
        setup=lambda c: (production_only_version(c), _own_token(c)),
        post=False,
    ),
    Action(
        "hidden-version-module-page",
        "browser",
        (None,),
        views(DEV),
        _get(lambda c: reverse("lifecycle:module", args=[c.module.pk, c.at(DEV).pk])),
        setup=production_only_version,
        check=_hides_production,
        post=False,
    ),
    Action(
        "hidden-version-application-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:application", args=[c.application.pk])),
        setup=production_only_version,
        check=_hides_production,
        post=False,
    ),
    Action(
        "hidden-version-hotfix-list",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("hotfixes:list")),
        setup=production_only_version,
        check=_hides_production,
        post=False,
        url_name="hotfixes:list",
    ),
    Action(
        "hidden-version-visible-file",  # beside it, the version current in Development is shown
        "browser",
        (None,),
        views(DEV),
        _dev_module_file(lambda c: 1),
        setup=production_only_version,
        check=_hides_production,
        htmx=True,
        post=False,
    ),
    # The admin: nobody makes a token for someone else, nor gives one to someone else.
    Action(
        "admin-token-add-page",
        "admin",
        (None,),
        nobody(FORBIDDEN),
        _get(lambda c: "/admin/lifecycle/apitoken/add/"),
        post=False,
    ),
    Action(
        "admin-token-add",
        "admin",
        (None,),
        nobody(FORBIDDEN),
        _admin_token_add,
        setup=_someone_else,
        csrf=False,
    ),
    Action(
        "admin-token-reassign",
        "admin",
        (None,),
        nobody(NO_EFFECT),
        _admin_token_reassign,
        setup=_own_token_and_someone_else,
        csrf=False,
    ),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}
