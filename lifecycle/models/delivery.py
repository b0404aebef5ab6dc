"""Delivery to machines: agent tokens, the last report per application, drift, webhook attempts.

An environment whose `delivery` is `agent` or `webhook` has its deployments
delivered to real machines (lifecycle/delivery/). These rows hold what the
machines said; what *should* run there is still CurrentVersion.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class AgentToken(models.Model):
    """A token for one environment's agent (or webhook receiver): it may act for that environment only.

    Stored only as its SHA-256, like personal API tokens; it belongs to no user,
    so it carries nobody's rights beyond reading the environment's desired state
    and archives and writing its reports and drift uploads.
    """

    environment = models.ForeignKey(
        "lifecycle.Environment", on_delete=models.CASCADE, related_name="agent_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise the token.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The agent's sign of life: renewed by its polls at most once a second (offline after 3 intervals).
    last_seen_at = models.DateTimeField(null=True, blank=True)
    interval_seconds = models.PositiveIntegerField(
        default=5, help_text="How often the agent says it polls; 3 missed polls show it offline."
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["environment", "-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…) for {self.environment.name}"


class LiveApplication(models.Model):
    """What the agent of an environment last reported for one application, and what it must redo."""

    environment = models.ForeignKey("lifecycle.Environment", on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey("lifecycle.Application", on_delete=models.CASCADE, related_name="+")
    # Bumped by Retry and Redeploy: the agent applies again (and re-runs its hook) when it differs.
    desired_generation = models.PositiveIntegerField(default=0)
    applied_generation = models.PositiveIntegerField(default=0)
    version = models.CharField(max_length=40, blank=True, help_text="The version the agent applied.")
    deployment = models.ForeignKey(
        "lifecycle.Deployment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    applied = models.JSONField(default=dict, help_text="module name -> tree hash the agent wrote.")
    live = models.JSONField(default=dict, help_text="module name -> tree hash found on disk.")
    hook_exit_status = models.IntegerField(null=True, blank=True)
    hook_output = models.TextField(blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "application"], name="one_live_row_per_application"
            )
        ]

    def __str__(self):
        return f"{self.application.name} live in {self.environment.name}"


class Drift(models.Model):
    """Files found on a machine that differ from the version deployed there, as the agent uploaded them."""

    class Resolution(models.TextChoices):
        ADOPTED = "adopted", "Adopted as hotfix"
        REDEPLOYED = "redeployed", "Redeployed over"
        GONE = "gone", "Gone (the machine matches again)"

    environment = models.ForeignKey("lifecycle.Environment", on_delete=models.PROTECT, related_name="+")
    module = models.ForeignKey("lifecycle.Module", on_delete=models.PROTECT, related_name="drifts")
    deployed_version = models.ForeignKey(
        "lifecycle.ModuleVersion", on_delete=models.PROTECT, related_name="+"
    )
    manifest = models.JSONField(help_text="path -> content hash of the files found on the machine.")
    tree_hash = models.CharField(max_length=64)
    found_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    adopted_version = models.ForeignKey(
        "lifecycle.ModuleVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-found_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "module"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_drift_per_module_environment",
            )
        ]

    def __str__(self):
        return f"Drift of {self.module.name} in {self.environment.name}"


class DeliveryAttempt(models.Model):
    """One webhook POST of a deployment, successful or not: shown on the deployment's page."""

    deployment = models.ForeignKey(
        "lifecycle.Deployment", on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    url = models.CharField(max_length=500)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["deployment", "number"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "number"], name="one_delivery_attempt_per_number")
        ]

    def __str__(self):
        return f"Attempt {self.number} of deployment {self.deployment_id}"
