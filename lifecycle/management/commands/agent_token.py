"""python manage.py agent_token ENVIRONMENT [--name NAME]

Creates an agent token for ENVIRONMENT (whose delivery must be agent or
webhook) and prints the raw token as the last line of its output, for a script
to keep: `manage.py agent_token Production | tail -n 1 > /etc/stageboard/token`.
The token is shown this once; only its hash is stored. Exit codes as for
publish: 2 for a bad name, 4 for an unknown environment.
"""

import socket

from django.core.management.base import BaseCommand, CommandError

from lifecycle.cli import EXIT_BAD_INPUT, EXIT_NOT_FOUND
from lifecycle.delivery import agent_tokens
from lifecycle.models import Environment


class Command(BaseCommand):
    help = "Create an agent token for an environment and print it (its last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("environment", help="The environment the token's agents deliver to")
        parser.add_argument(
            "--name", default=None, help="What the token is for, such as the machine (default: this host)"
        )

    def handle(self, *args, environment, name, **options):
        if "\x00" in environment or not _is_unicode(environment):
            raise CommandError(
                f"No environment is named {environment!r}: the name holds a NUL or text that is not valid "
                "Unicode (is the terminal set to UTF-8?).",
                returncode=EXIT_NOT_FOUND,
            )
        found = Environment.objects.filter(name=environment).first()
        if found is None:
            names = ", ".join(Environment.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(
                f"No environment named {environment!r}; there are: {names}.", returncode=EXIT_NOT_FOUND
            )
        if name is None:
            name = f"agent on {socket.gethostname()}"[:100]
        if not _is_unicode(name):
            raise CommandError("The name holds text that is not valid Unicode.", returncode=EXIT_BAD_INPUT)
        try:
            token, raw = agent_tokens.create(found, name)
        except ValueError as error:
            raise CommandError(f"{error} No token was made.", returncode=EXIT_BAD_INPUT) from None
        self.stdout.write(
            f"Created agent token {token.name!r} ({token.prefix}…) for {found.name}. "
            "It is shown only now; keep it in a file the agent reads (--token-file):"
        )
        self.stdout.write(raw)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
