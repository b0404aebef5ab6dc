from django.conf import settings
from django.db import models
from django.db.models import Q

from lifecycle.models import Application, Environment, Module, ModuleVersion


class HotfixQuerySet(models.QuerySet):
    def open(self):
        return self.filter(solved_at__isnull=True)


class Hotfix(models.Model):
    """A change published directly into an environment other than the first.

    Open until someone marks it solved; while open the application's version
    in that environment is shown red.
    """

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="hotfixes")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="hotfixes")
    opened_at = models.DateTimeField()
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    solved_at = models.DateTimeField(null=True, blank=True)
    solved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    solved_incomplete = models.BooleanField(default=False)
    solved_note = models.TextField(blank=True)

    objects = HotfixQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "hotfixes"
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "environment"],
                condition=Q(solved_at__isnull=True),
                name="one_open_hotfix_per_application_environment",
            )
        ]

    def __str__(self):
        return f"Hotfix of {self.application.name} in {self.environment.name}"

    @property
    def is_open(self):
        return self.solved_at is None


class HotfixChange(models.Model):
    """One module version a hotfix made, and the version it replaced."""

    hotfix = models.ForeignKey(Hotfix, on_delete=models.PROTECT, related_name="changes")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")
    replaced_version = models.ForeignKey(
        ModuleVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.module.name} v{self.version.number}"


class Merge(models.Model):
    """Changes of a source environment merged into an earlier one, as new module versions there."""

    source = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="merges")
    hotfix = models.ForeignKey(
        Hotfix,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merges",
        help_text="The open hotfix this merge propagated, if any.",
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"Merge {self.application.name} {self.source.name} → {self.target.name}"


class MergeItem(models.Model):
    """One module of a merge: the versions involved and which source changes were taken."""

    merge = models.ForeignKey(Merge, on_delete=models.PROTECT, related_name="items")
    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="+")
    base_version = models.ForeignKey(
        ModuleVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    target_version = models.ForeignKey(
        ModuleVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source_version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")
    result_version = models.ForeignKey(ModuleVersion, on_delete=models.PROTECT, related_name="+")
    complete = models.BooleanField(help_text="Every change of the source version was taken.")
    selection = models.JSONField(
        default=dict, help_text="Per file: the source changes taken, conflict resolutions."
    )

    def __str__(self):
        return f"{self.module.name} v{self.result_version.number}"
