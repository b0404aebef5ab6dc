"""python manage.py download ENV MODULE DEST --user NAME [--version N]

Writes the module's current version in ENV (or version N) to DEST: a zip when
DEST ends in .zip, otherwise a new or empty folder. Exit codes as for publish.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lifecycle import access, visibility
from lifecycle.archives import write_archive
from lifecycle.cli import EXIT_BAD_INPUT, EXIT_FORBIDDEN, EXIT_NOT_FOUND, find_target
from lifecycle.models import AccessLevel, CurrentVersion


class Command(BaseCommand):
    help = "Download a module version as a zip or into a folder."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Our --version picks a module version; it replaces Django's --version (the Django release).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("environment")
        parser.add_argument("module")
        parser.add_argument("dest", help="A .zip file to write, or a folder (new or empty)")
        parser.add_argument("--user", required=True, help="The user downloading; needs view access")
        parser.add_argument("--version", type=int, dest="number", help="Version number (default: current)")

    def handle(self, *args, environment, module, dest, user, number, **options):
        environment, module, user = find_target(environment, module, user)
        if not access.can(user, environment, AccessLevel.VIEW):
            raise CommandError(f"{user} has no access to {environment.name}.", returncode=EXIT_FORBIDDEN)
        if number is None:
            current = CurrentVersion.objects.filter(module=module, environment=environment).first()
            if current is None:
                raise CommandError(
                    f"{module.name} has no version in {environment.name}.", returncode=EXIT_NOT_FOUND
                )
            version = current.version
        else:
            # Only a version the user may see (lifecycle.visibility); any other is "no version N".
            version = visibility.visible_versions(user, module).filter(number=number).first()
            if version is None:
                raise CommandError(f"{module.name} has no version {number}.", returncode=EXIT_NOT_FOUND)
        files = {row.path: bytes(row.blob.data) for row in version.files.select_related("blob")}
        target = Path(dest)
        if target.suffix.lower() == ".zip":
            if target.exists():
                raise CommandError(f"{target} already exists; not overwritten.", returncode=EXIT_BAD_INPUT)
            target.write_bytes(write_archive(files))
        else:
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise CommandError(
                    f"{target} is not an empty folder; nothing written.", returncode=EXIT_BAD_INPUT
                )
            for path, data in files.items():
                # Paths were checked when published: relative, no '..', so they stay inside target.
                file_path = target / path
                file_path.parent.mkdir(parents=True, exist_ok=True)
                file_path.write_bytes(data)
        self.stdout.write(f"Wrote {module.name} v{version.number} ({len(files)} files) to {target}.")
