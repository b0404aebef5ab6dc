"""Tagging an application's state in an environment as a new application version."""

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lifecycle import audit
from lifecycle.delivery import revisions
from lifecycle.models import ApplicationTag, AuditEvent, CurrentVersion, EnvironmentTag, TagMember
from lifecycle.version_numbers import InvalidVersionNumber, VersionNumber


class TagError(ValueError):
    """A tag that cannot be made; the message says why, for the user."""


def taken_numbers(application) -> set[VersionNumber]:
    return {
        VersionNumber(major, minor, patch)
        for major, minor, patch in application.tags.values_list("major", "minor", "patch")
    }


def parse_new_number(application, text: str) -> VersionNumber:
    """Parse a number the user typed and check it is free in the application."""
    try:
        number = VersionNumber.parse(text)
    except InvalidVersionNumber as error:
        raise TagError(str(error)) from None
    existing = application.tags.filter(major=number.major, minor=number.minor, patch=number.patch).first()
    if existing is not None:
        same = (
            "" if existing.number == str(number) else f" ({number} is the same version as {existing.number})"
        )
        raise TagError(
            f"{existing.number} is already taken in {application.name}{same}; choose another number."
        )
    return number


def _add_members(tag, current: list[tuple[int, int]]) -> None:
    """The tag's (module, version) pairs. On PostgreSQL one INSERT from two arrays: preparing every
    field of 500 TagMember instances for bulk_create was a measurable part of Tag & Deploy."""
    if connection.vendor != "postgresql":
        TagMember.objects.bulk_create(
            [
                TagMember(tag=tag, module_id=module_id, version_id=version_id)
                for module_id, version_id in current
            ]
        )
        return
    modules, versions = (list(column) for column in zip(*current, strict=True))
    sql = (
        f"INSERT INTO {TagMember._meta.db_table} (tag_id, module_id, version_id) "  # noqa: S608
        "SELECT %s::bigint, u.module_id, u.version_id "
        "FROM UNNEST(%s::bigint[], %s::bigint[]) AS u(module_id, version_id)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tag.pk, modules, versions])


def tag_environment(application, environment, text: str, *, user=None, notes: str = "") -> ApplicationTag:
    """Tag the modules currently running in `environment` as application version `text`."""
    number = parse_new_number(application, text)
    with transaction.atomic():
        current = list(
            CurrentVersion.objects.select_for_update()
            .filter(environment=environment, module__application=application)
            .values_list("module_id", "version_id")
        )
        if not current:
            raise TagError(f"{application.name} has no modules in {environment.name} to tag.")
        try:
            with transaction.atomic():
                tag = ApplicationTag.objects.create(
                    application=application,
                    number=str(number),
                    major=number.major,
                    minor=number.minor,
                    patch=number.patch,
                    environment=environment,
                    created_by=user,
                    notes=notes,
                )
        except IntegrityError:
            # Someone tagged the same number between our check and our insert.
            raise TagError(f"{number} was just taken in {application.name}; choose another number.") from None
        _add_members(tag, current)
        EnvironmentTag.objects.update_or_create(
            environment=environment,
            application=application,
            defaults={"tag": tag, "changed_at": timezone.now()},
        )
        # The version the environment's agents are told changes with the tag (docs/agent.md).
        revisions.bump([environment.pk], [application.pk])
        audit.record(
            AuditEvent.Action.TAG,
            user=user,
            environment=environment,
            application=application,
            summary=f"Tagged {application.name} {tag.number} in {environment.name}",
            after={"tag": tag.number, "modules": len(current), "notes": notes},
        )
    return tag
