"""Per-environment access: the one place every view, API and command asks.

A user's level in an environment is the highest level any of their groups
has there; superusers have `full` everywhere; no level means the environment
is invisible to them.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import Http404

from lifecycle.models import AccessLevel, Environment, EnvironmentAccess

_CACHE_ATTRIBUTE = "_stageboard_access_levels"


def levels_for(user) -> dict[int, AccessLevel]:
    """Environment id -> the user's level there, in one query, cached for the request."""
    if not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is not None:
        return cached
    if user.is_superuser:
        levels = {pk: AccessLevel.FULL for pk in Environment.objects.values_list("pk", flat=True)}
    else:
        rows = (
            EnvironmentAccess.objects.filter(group__user=user)
            .values("environment_id")
            .annotate(level=Max("level"))
            .values_list("environment_id", "level")
        )
        levels = {environment_id: AccessLevel(level) for environment_id, level in rows}
    setattr(user, _CACHE_ATTRIBUTE, levels)
    return levels


def level_in(user, environment) -> AccessLevel | None:
    return levels_for(user).get(environment.pk)


def can(user, environment, level: AccessLevel) -> bool:
    current = level_in(user, environment)
    return current is not None and current >= level


def require(user, environment, level: AccessLevel) -> None:
    """Raise unless the user has at least `level` in `environment`.

    Asking to see an environment the user cannot see answers 404 (Http404), like a missing one,
    so what is there is not confirmed to exist; a change they may not make is 403.
    """
    if can(user, environment, level):
        return
    if level == AccessLevel.VIEW:
        raise Http404("There is nothing here, or you do not have access to it.")
    raise PermissionDenied(f"You need {level.label} access to {environment.name} to do this.")


def visible_environments(user) -> list[Environment]:
    """The environments the user may see, in pipeline order."""
    levels = levels_for(user)
    return [environment for environment in Environment.objects.all() if environment.pk in levels]


def forget_cached_levels(user) -> None:
    if hasattr(user, _CACHE_ATTRIBUTE):
        delattr(user, _CACHE_ATTRIBUTE)
