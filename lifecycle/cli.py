"""What the publish and download commands share: exit codes and name lookups."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from lifecycle.models import Environment, Module

EXIT_BAD_INPUT = 2
EXIT_FORBIDDEN = 3
EXIT_NOT_FOUND = 4
EXIT_STALE = 5


def _may_be_a_name(text: str) -> bool:
    """Whether `text` could name anything: not with a NUL, nor as text that is not valid Unicode
    (what a terminal that is not UTF-8 hands Python), which no database query can even be sent."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_target(environment_name, module_name, username):
    for name in (environment_name, module_name, username):
        if not _may_be_a_name(name):
            raise CommandError(
                f"No environment, module or user is named {name!r}: it holds a NUL or text that is not "
                "valid Unicode (is the terminal set to UTF-8?).",
                returncode=EXIT_NOT_FOUND,
            )
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
