"""Make the demo environments deliver to this machine, for the agents `make run` starts (Procfile)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lifecycle.demo import DemoError, prepare_agents


class Command(BaseCommand):
    help = (
        "Make the four demo environments agent environments delivering into var/environments/<slug>/, "
        "with an agent token for each in var/agents/<slug>.token. Safe to run again: a token is made "
        "only when its file is missing or no longer valid."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--var-dir",
            default=str(Path(settings.BASE_DIR) / "var"),
            help="Where the token files and delivered releases go (default: var/ in the project).",
        )

    def handle(self, *args, var_dir, **options):
        try:
            agents = prepare_agents(Path(var_dir))
        except DemoError as error:
            raise CommandError(str(error)) from None
        for agent in agents:
            token = "new token" if agent.new_token else "token kept"
            self.stdout.write(
                f"{agent.environment.name}: delivered by its agent into {_shown(agent.root)}/ "
                f"({token} in {_shown(agent.token_file)})"
            )


def _shown(path: Path) -> str:
    """The path as `make run` users know it: relative to where they are, when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
