"""Blocking an application from deployment into an environment, and lifting the block.

A block is kept when it is lifted (who, when and why), so the application's page and the
admin show the history. At most one block is active per application and environment.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle import access, audit, revision
from lifecycle.models import AccessLevel, Application, ApplicationBlock, AuditEvent

MAX_REASON_LENGTH = 2000


class BlockError(ValueError):
    """A block or unblock that cannot be done; the message says why, for the user."""


def active_block(application, environment) -> ApplicationBlock | None:
    return (
        ApplicationBlock.objects.filter(
            application=application, environment=environment, unblocked_at__isnull=True
        )
        .select_related("blocked_by")
        .first()
    )


def _clean_reason(reason: str | None, action: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise BlockError(f"Say why you {action}: the reason is kept with the block.")
    if len(reason) > MAX_REASON_LENGTH:
        raise BlockError(f"Keep the reason under {MAX_REASON_LENGTH} characters.")
    return reason


def _describe(block: ApplicationBlock) -> str:
    when = timezone.localtime(block.blocked_at)
    return f"by {block.blocked_by.get_username()} on {when:%Y-%m-%d %H:%M}: {block.reason}"


def block(application, environment, user, reason: str) -> ApplicationBlock:
    """Block `application` from deployment into `environment`. Raises BlockError, writing nothing.

    Needs `full` there (PermissionDenied), whichever page, API or command asks.
    """
    access.require(user, environment, AccessLevel.FULL)
    reason = _clean_reason(reason, f"block {application.name} in {environment.name}")
    with transaction.atomic():
        # Two people blocking at once queue on the application's row; the second then sees the first block.
        Application.objects.select_for_update().get(pk=application.pk)
        existing = active_block(application, environment)
        if existing is not None:
            raise BlockError(
                f"{application.name} is already blocked in {environment.name} {_describe(existing)}"
            )
        try:
            with transaction.atomic():
                made = ApplicationBlock.objects.create(
                    application=application,
                    environment=environment,
                    reason=reason,
                    blocked_by=user,
                    blocked_at=timezone.now(),
                )
                audit.record(
                    AuditEvent.Action.BLOCK,
                    user=user,
                    environment=environment,
                    application=application,
                    summary=f"Blocked {application.name} in {environment.name}: {reason}",
                    after={"blocked": True, "reason": reason},
                )
                return made
        except IntegrityError:
            # The partial unique constraint caught a block made between our check and our insert.
            raise BlockError(
                f"{application.name} was just blocked in {environment.name} by someone else; "
                "reload the page to see why."
            ) from None


def unblock(application, environment, user, reason: str) -> ApplicationBlock:
    """Lift the active block of `application` in `environment`. Raises BlockError, writing nothing.

    Needs `full` there (PermissionDenied).
    """
    access.require(user, environment, AccessLevel.FULL)
    reason = _clean_reason(reason, f"unblock {application.name} in {environment.name}")
    with transaction.atomic():
        current = (
            ApplicationBlock.objects.select_for_update()
            .filter(application=application, environment=environment, unblocked_at__isnull=True)
            .first()
        )
        if current is None:
            raise BlockError(f"{application.name} is not blocked in {environment.name}; nothing to unblock.")
        now = timezone.now()
        # Conditional, so a concurrent unblock that got there first is noticed on every database.
        lifted = ApplicationBlock.objects.filter(pk=current.pk, unblocked_at__isnull=True).update(
            unblocked_by=user, unblocked_at=now, unblock_reason=reason
        )
        if not lifted:
            raise BlockError(f"{application.name} was just unblocked in {environment.name} by someone else.")
        revision.bump([application.pk])  # An update(): no signal.
        audit.record(
            AuditEvent.Action.UNBLOCK,
            user=user,
            environment=environment,
            application=application,
            summary=f"Unblocked {application.name} in {environment.name}: {reason}",
            before={"blocked": True, "reason": current.reason},
            after={"blocked": False, "reason": reason},
        )
    current.unblocked_by, current.unblocked_at, current.unblock_reason = user, now, reason
    return current
