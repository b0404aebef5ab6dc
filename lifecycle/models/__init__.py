from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from lifecycle.version_numbers import VersionNumber


class ImmutableError(Exception):
    """Raised when code tries to change or delete a record that is history."""


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableError(f"{self.model.__name__} records cannot be changed once made.")

    def delete(self):
        raise ImmutableError(f"{self.model.__name__} records cannot be deleted.")


class ImmutableModel(models.Model):
    """A record that is written once and never changed or deleted: versions, tags, history."""

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError(f"{type(self).__name__} {self.pk} cannot be changed once made.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError(f"{type(self).__name__} {self.pk} cannot be deleted.")


class EnvironmentQuerySet(models.QuerySet):
    def first_in_pipeline(self):
        return self.order_by("position", "id").first()


class Delivery(models.TextChoices):
    RECORD = "record", "Record only (the switch is the deployment)"
    AGENT = "agent", "Agent (a Stageboard agent on the machine pulls it)"
    WEBHOOK = "webhook", "Webhook (a signed POST tells a receiver)"


class Environment(models.Model):
    name = models.CharField(max_length=60, unique=True)
    # Unique: two environments at one position would make "the next environment" ambiguous.
    position = models.PositiveIntegerField(
        unique=True, help_text="Order in the pipeline; the lowest is the development environment."
    )
    is_production = models.BooleanField("Production", default=False)
    delivery = models.CharField(
        max_length=10,
        choices=Delivery.choices,
        default=Delivery.RECORD,
        help_text="How a deployment reaches the environment's machines (docs/agent.md).",
    )
    webhook_url = models.URLField(
        blank=True, max_length=500, help_text="Webhook delivery: where the signed POST goes."
    )
    webhook_secret = models.CharField(
        max_length=100,
        blank=True,
        help_text="Webhook delivery: the key the body is signed with (HMAC-SHA256); made when blank.",
    )
    # Bumped in the transaction of every change to what should run here (a switch, a publish, a
    # Redeploy or Retry): the agent's poll compares it, so an unchanged state costs one indexed read.
    state_revision = models.PositiveBigIntegerField(default=0, editable=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.name

    def is_first(self):
        return Environment.objects.first_in_pipeline() == self

    @property
    def delivers(self) -> bool:
        """True when a deployment here is delivered to machines, not only recorded."""
        return self.delivery != Delivery.RECORD


class Application(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = [Lower("name"), "id"]

    def __str__(self):
        return self.name


class Module(models.Model):
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="modules")
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Blob(models.Model):
    """File content, stored once per SHA-256 whatever how many versions use it."""

    hash = models.CharField(max_length=64, primary_key=True)
    data = models.BinaryField()
    size = models.PositiveBigIntegerField()
    is_binary = models.BooleanField()

    objects = ImmutableQuerySet.as_manager()

    def __str__(self):
        return self.hash[:12]


class ModuleVersion(ImmutableModel):
    """An immutable snapshot of a module's files, numbered 1, 2, 3... per module."""

    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    merged_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="merged_into"
    )
    merged_all = models.BooleanField(
        default=True,
        help_text="Whether this merge took every change of merged_from. A partial merge does not count "
        "as containing merged_from, so the changes left out are offered again.",
    )
    tree_hash = models.CharField(max_length=64, db_index=True)
    file_count = models.PositiveIntegerField(default=0)
    total_size = models.PositiveBigIntegerField(default=0)
    comment = models.TextField(blank=True)
    published_in = models.ForeignKey(
        Environment, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["module", "number"]
        constraints = [
            models.UniqueConstraint(fields=["module", "number"], name="module_version_number_unique")
        ]

    def __str__(self):
        return f"{self.module.name} v{self.number}"

    def manifest(self) -> dict[str, str]:
        return dict(self.files.values_list("path", "blob_id"))


class ModuleFile(ImmutableModel):
    """One entry of a version's manifest: a path and the content stored under its hash."""

    version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="files")
    path = models.CharField(max_length=1024)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["version", "path"]
        constraints = [models.UniqueConstraint(fields=["version", "path"], name="module_file_path_unique")]

    def __str__(self):
        return self.path


class CurrentVersion(models.Model):
    """The module version running in an environment. Changed only by publish, deploy or merge."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="current_versions")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="current_versions")
    version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "module"], name="current_version_unique")
        ]

    def __str__(self):
        return f"{self.module.name} v{self.version.number} in {self.environment.name}"


class ModuleChange(ImmutableModel):
    """The record of one change of a module's current version in an environment."""

    class Kind(models.TextChoices):
        PUBLISH = "publish", "Publish"
        DEPLOY = "deploy", "Deploy"
        MERGE = "merge", "Merge"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="changes")
    previous_version = models.ForeignKey(
        ModuleVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(db_index=True)
    comment = models.TextField(blank=True)
    deployment = models.ForeignKey(
        "Deployment", on_delete=models.PROTECT, null=True, blank=True, related_name="module_changes"
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return (
            f"{self.get_kind_display()} {self.module.name} v{self.version.number} in {self.environment.name}"
        )


class ApplicationTag(ImmutableModel):
    """An application version: a named, immutable set of module versions such as 0.3 or 0.3.1."""

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="tags")
    number = models.CharField(max_length=32)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    environment = models.ForeignKey(
        Environment, on_delete=models.PROTECT, related_name="+", help_text="Where it was tagged."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["application", "major", "minor", "patch"]
        constraints = [
            # 0.3 and 0.3.0 are the same version: patch is stored as 0 for both.
            models.UniqueConstraint(
                fields=["application", "major", "minor", "patch"], name="application_tag_number_unique"
            )
        ]

    def __str__(self):
        return f"{self.application.name} {self.number}"

    @property
    def version_number(self) -> VersionNumber:
        return VersionNumber.parse(self.number)


class TagMember(ImmutableModel):
    tag = models.ForeignKey(ApplicationTag, on_delete=models.PROTECT, related_name="members")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tag", "module"], name="tag_member_module_unique")]

    def __str__(self):
        return f"{self.tag}: {self.module.name} v{self.version.number}"


class EnvironmentTag(models.Model):
    """The tag last deployed to or tagged in an environment: the application's version there."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    tag = models.ForeignKey(ApplicationTag, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["environment", "application"], name="environment_tag_unique")
        ]

    def __str__(self):
        return f"{self.application.name} {self.tag.number} in {self.environment.name}"


class AccessLevel(models.IntegerChoices):
    VIEW = 10, "view"
    PUBLISH = 20, "publish"
    DEPLOY = 30, "deploy"
    FULL = 40, "full"


class EnvironmentAccess(models.Model):
    """A group's access level in one environment. A user's level is the highest of their groups'."""

    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="environment_access")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="access")
    level = models.PositiveSmallIntegerField(choices=AccessLevel.choices)

    class Meta:
        verbose_name_plural = "environment access"
        constraints = [
            models.UniqueConstraint(fields=["group", "environment"], name="environment_access_unique"),
            models.CheckConstraint(
                condition=Q(level__in=AccessLevel.values), name="environment_access_level"
            ),
        ]

    def __str__(self):
        return f"{self.group.name}: {self.get_level_display()} in {self.environment.name}"


class Draft(models.Model):
    """A user's edit of a module in an environment, kept until published or discarded.

    Stored in the database (files by content hash) so an edit survives a refused
    publish and any process behind the load balancer can continue it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drafts")
    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="drafts")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="drafts")
    base_version = models.ForeignKey(
        ModuleVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The version the edit started from.",
    )
    manifest = models.JSONField(default=dict, help_text="path -> content hash")
    revision = models.PositiveIntegerField(
        default=0,
        help_text="Counts the draft's changes; a save or publish made from an older revision is stale.",
    )
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "module", "environment"], name="one_draft_per_user_module_env"
            )
        ]

    def __str__(self):
        return f"{self.user} editing {self.module.name} in {self.environment.name}"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise the token.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    read_only = models.BooleanField(
        default=False, help_text="A read-only token may only read (GET): any other request answers 403."
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="From this moment on the token no longer works. Empty: never."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self):
        return self.revoked_at is None

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()


class ApplicationBlock(models.Model):
    """An application blocked from deployment into an environment, with the reason. Kept when lifted."""

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="blocks")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    blocked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    blocked_at = models.DateTimeField()
    unblocked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    unblocked_at = models.DateTimeField(null=True, blank=True)
    unblock_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-blocked_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "environment"],
                condition=Q(unblocked_at__isnull=True),
                name="one_active_block_per_application_environment",
            )
        ]

    def __str__(self):
        return f"{self.application.name} blocked in {self.environment.name}"


class DeploymentPlan(models.Model):
    """A saved selection of applications to deploy from one environment to another, re-usable."""

    name = models.CharField(max_length=100)
    source = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return f"{self.name} ({self.source.name} → {self.target.name})"


class PlanItem(models.Model):
    """One application in a plan: deploy it (tagging the source first when it shows +) or leave it."""

    plan = models.ForeignKey(DeploymentPlan, on_delete=models.CASCADE, related_name="items")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    include = models.BooleanField(default=True)
    number = models.CharField(
        max_length=32,
        blank=True,
        help_text="The number to tag with, when the source shows +. Blank: suggest.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plan", "application"], name="plan_item_application_unique")
        ]

    def __str__(self):
        return f"{self.plan.name}: {self.application.name}"


class Deployment(models.Model):
    """One run of a deployment into a target environment, with its log and outcome."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        # Switched in Stageboard, being delivered to the target's machines (agent or webhook).
        WAITING = "waiting", "Waiting for delivery"
        FINISHED = "finished", "Finished"
        WARNINGS = "warnings", "Finished with warnings"
        # Switched, but the delivery failed: a hook failed, or the machines did not confirm in time.
        ERRORS = "errors", "Finished with errors"
        # Nothing was switched: refused at the switch, or the worker stopped (docs/rules.md).
        FAILED = "failed", "Aborted"

    ACTIVE = (Status.RUNNING, Status.WAITING)

    source = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments_in")
    plan = models.ForeignKey(
        DeploymentPlan, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING, db_index=True)
    notes = models.TextField(blank=True)
    deploy_anyway = models.BooleanField(
        default=False,
        help_text="Confirmed by a user with full access although it undoes changes in the target.",
    )
    findings = models.JSONField(default=list, help_text="The validation findings the deployment ran with.")
    requested = models.JSONField(
        default=dict,
        help_text="What was asked: applications, tag numbers and the state it was validated against.",
    )
    # The lease: the worker running it renews this; an older one than DEPLOYMENT_HEARTBEAT_SECONDS
    # means the worker stopped (lifecycle/deploying/leases.py).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True, help_text="The worker that ran the switch.")
    # Delivery (agent or webhook targets): what the machines must confirm, and by when.
    expected = models.JSONField(
        default=dict,
        blank=True,
        help_text="application name -> {generation, modules: {module name: tree hash}} to confirm.",
    )
    delivery_deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"Deployment {self.pk} into {self.target.name}"

    def shown_applications(self) -> list[int] | None:
        """The applications whose rows show this deployment (lifecycle.revision); None: unknown."""
        applications = (self.requested or {}).get("applications")
        return [int(pk) for pk in applications] if isinstance(applications, list) else None

    @property
    def is_running(self):
        """Still going: switching, or waiting for its delivery (the page keeps refreshing)."""
        return self.status in self.ACTIVE

    @property
    def is_waiting(self):
        return self.status == self.Status.WAITING

    @property
    def status_label(self):
        """ "Waiting for Production", as LifeTime says it; otherwise the status's own label."""
        if self.is_waiting:
            return f"Waiting for {self.target.name}"
        return self.get_status_display()


class DeploymentItem(models.Model):
    """What a deployment did to one application."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="items")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="deployment_items")
    tag = models.ForeignKey(ApplicationTag, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    previous_tag = models.ForeignKey(
        ApplicationTag, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    tagged = models.BooleanField(default=False, help_text="The tag was made for this deployment.")
    modules_changed = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.application.name} {self.tag.number if self.tag else ''}"


class DeploymentLogLine(models.Model):
    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField()
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return self.message


class AuditEvent(ImmutableModel):
    """One line of the append-only audit trail: who did what, when, from where, before and after.

    Names are copied as text so a line keeps meaning whatever happens to the
    objects it mentions; nothing in the console, the admin or the API edits it.
    """

    class Action(models.TextChoices):
        PUBLISH = "publish", "Publish"
        TAG = "tag", "Tag"
        DEPLOY_STARTED = "deploy_started", "Deployment started"
        DEPLOY_FINISHED = "deploy_finished", "Deployment finished"
        DEPLOY_FAILED = "deploy_failed", "Deployment failed"
        MERGE = "merge", "Merge"
        HOTFIX_OPENED = "hotfix_opened", "Hotfix opened"
        HOTFIX_SOLVED = "hotfix_solved", "Hotfix solved"
        BLOCK = "block", "Block"
        UNBLOCK = "unblock", "Unblock"
        PLAN_SAVED = "plan_saved", "Plan saved"
        PLAN_DELETED = "plan_deleted", "Plan deleted"
        TOKEN_CREATED = "token_created", "API token created"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        LOGIN_FAILED = "login_failed", "Login failed"
        DEPLOY_RETRIED = "deploy_retried", "Deployment retried"
        AGENT_TOKEN_CREATED = "agent_token_created", "Agent token created"
        AGENT_TOKEN_REVOKED = "agent_token_revoked", "Agent token revoked"
        DRIFT_FOUND = "drift_found", "Drift found"
        DRIFT_ADOPTED = "drift_adopted", "Drift adopted as hotfix"
        DRIFT_REDEPLOYED = "drift_redeployed", "Drift redeployed over"
        ADMIN_ADD = "admin_add", "Admin: added"
        ADMIN_CHANGE = "admin_change", "Admin: changed"
        ADMIN_DELETE = "admin_delete", "Admin: deleted"

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=20, choices=Action.choices, db_index=True)
    # No database constraint and no cascade: deleting a user must never touch the trail.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    username = models.CharField(max_length=150, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    environment = models.CharField(max_length=60, blank=True, db_index=True)
    application = models.CharField(max_length=100, blank=True, db_index=True)
    summary = models.TextField()
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.username or '-'} {self.summary}"


class LoginAttempt(models.Model):
    """A counter of login attempts for one key: a username, an address, or the pair of both.

    Attempts are counted before the password is checked, under a lock on this
    row, so attempts made at the same moment are counted one after another
    (lifecycle/login_attempts.py). Usernames are kept exactly as the login form
    hands them to authentication (stripped, NFKC), so no spelling of one name
    escapes its count.
    """

    class Scope(models.TextChoices):
        PAIR = "pair", "Username from address"
        ADDRESS = "address", "Address"
        USERNAME = "username", "Username"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    username = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=45, blank=True)  # A validated IP address, or "" when unknown.
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(db_index=True)
    # On a pair: the username last logged in from this address, which spares it the username's slowdown.
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "username", "address"], name="one_login_counter_per_key")
        ]

    def __str__(self):
        return f"{self.get_scope_display()} {self.username} {self.address}".strip()


# Delivery to machines: agent tokens, what the agents report, drift, webhook attempts. They name the
# models above as strings, so importing them last (and here, where Django looks) is safe.
from lifecycle.models.delivery import (  # noqa: E402, F401
    AgentToken,
    DeliveryAttempt,
    Drift,
    LiveApplication,
)


class PipelineRevision(models.Model):
    """One row: a number bumped when any change the grid shows commits (lifecycle.revision).

    A grid or application page that shows revision N and asks again while it is still N gets 204
    with no body, read from this one row. A row, not a sequence: a sequence moves before the
    change commits, so a refresh could read the new number with the old rows and keep them.
    """

    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"pipeline revision {self.value}"


class PipelineChange(models.Model):
    """Which application a pipeline revision changed: an application's id, or none for "anything".

    A refresh that shows revision N reads the changes after N (lifecycle/refresh.py) and renders
    again only the rows of the applications they name; a change with no application (an
    environment, someone's access) makes it compare the whole page. Only the last
    `lifecycle.revision.KEEP` revisions are kept: a page older than that compares the whole page.
    """

    revision = models.BigIntegerField(db_index=True)
    # Not a foreign key: the record of a deleted application must not hold back its deletion.
    application_id = models.BigIntegerField(null=True)

    def __str__(self):
        return f"revision {self.revision}: application {self.application_id or 'any'}"
