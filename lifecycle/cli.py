"""What the publish and download commands share: exit codes and name lookups."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from lifecycle.models import Environment, Module

EXIT_BAD_INPUT = 2
EXIT_FORBIDDEN = 3
EXIT_NOT_FOUND = 4
EXIT_STALE = 5


def find_target(environment_name, module_name, username):
    environment = Environment.objects.filter(name=environment_name).first()
    if environment is None:
        names = ", ".join(Environment.objects.values_list("name", flat=True))
        raise CommandError(
            f"No environment named {environment_name!r}; there are: {names}.", returncode=EXIT_NOT_FOUND
        )
    module = Module.objects.select_related("application").filter(name=module_name).first()
    if module is None:
        raise CommandError(f"No module named {module_name!r}.", returncode=EXIT_NOT_FOUND)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user named {username!r}.", returncode=EXIT_NOT_FOUND)
    return environment, module, user
