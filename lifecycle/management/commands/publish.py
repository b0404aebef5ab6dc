"""python manage.py publish ENV MODULE PATH --user NAME [--comment TEXT]

Exit codes scripts can rely on: 0 published or no changes (the output says
which), 2 bad input (unreadable path, bad zip, limits), 3 access refused,
4 unknown environment, module or user, 5 refused because the module changed
(--base-version).
"""

from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from lifecycle.archives import ArchiveRejected, read_archive, read_folder
from lifecycle.cli import EXIT_BAD_INPUT, EXIT_FORBIDDEN, EXIT_STALE, find_target
from lifecycle.publishing import StaleEdit, content_limits, publish


class Command(BaseCommand):
    help = "Publish a folder or a zip as the new version of a module in an environment."

    def add_arguments(self, parser):
        parser.add_argument("environment", help="Environment name, e.g. Pre-Production")
        parser.add_argument("module", help="Module name, e.g. ShoppingCart")
        parser.add_argument("path", help="A folder or a .zip holding the module's files")
        parser.add_argument("--user", required=True, help="The user publishing; their access is checked")
        parser.add_argument("--comment", default="")
        parser.add_argument(
            "--base-version", type=int, help="Refuse (exit 5) unless this version is the current one there"
        )

    def handle(self, *args, environment, module, path, user, comment, base_version, **options):
        environment, module, user = find_target(environment, module, user)
        source = Path(path)
        limits = content_limits()
        try:
            if source.is_dir():
                files = read_folder(source, limits)
            elif source.is_file():
                with source.open("rb") as archive:
                    files = read_archive(archive, limits)
            else:
                raise CommandError(f"{path} is neither a folder nor a file.", returncode=EXIT_BAD_INPUT)
            based_on = None
            if base_version is not None:
                based_on = module.versions.filter(number=base_version).first()
                if based_on is None:
                    raise CommandError(
                        f"{module.name} has no version {base_version}.", returncode=EXIT_BAD_INPUT
                    )
            result = publish(
                module,
                environment,
                files,
                user=user,
                comment=comment,
                based_on=based_on,
                check_stale=base_version is not None,
            )
        except ArchiveRejected as error:
            raise CommandError(str(error), returncode=EXIT_BAD_INPUT) from None
        except PermissionDenied as error:
            raise CommandError(str(error), returncode=EXIT_FORBIDDEN) from None
        except StaleEdit as error:
            raise CommandError(f"Not published: {error}", returncode=EXIT_STALE) from None
        if result.created:
            hotfix = "" if environment.is_first() else " (hotfix)"
            self.stdout.write(
                f"Published {module.name} v{result.version.number} to {environment.name}{hotfix}."
            )
        else:
            self.stdout.write(
                f"No changes: identical to {module.name} v{result.version.number}; nothing published."
            )
