from django.core.management.base import BaseCommand, CommandError

from lifecycle.demo import DEMO_APPLICATIONS, GROUP_ACCESS, DemoError, load_demo
from lifecycle.models import Application, Environment
from lifecycle.pipeline import build_rows


class Command(BaseCommand):
    help = (
        "Load the demo pipeline: four environments, access groups, and eCommerce with a defect "
        "in Production ready to hotfix, beside applications in other states. Safe to run again."
    )

    def handle(self, *args, **options):
        try:
            created = load_demo()
        except DemoError as error:
            raise CommandError(str(error)) from None
        if not created:
            self.stdout.write("Demo pipeline already loaded; nothing changed.")
            return
        environments = list(Environment.objects.all())
        applications = Application.objects.filter(name__in=[spec.name for spec in DEMO_APPLICATIONS])
        self.stdout.write(self.style.SUCCESS("Loaded the demo pipeline."))
        self.stdout.write(f"Groups (no users yet; add them in the admin): {', '.join(GROUP_ACCESS)}.")
        self.stdout.write("Versions per environment (! marks an open hotfix):")
        table = [["", *(environment.name for environment in environments)]]
        for row in build_rows(applications, environments):
            labels = [cell.label + (" !" if cell.open_hotfix else "") for cell in row.cells]
            table.append([row.application.name, *labels])
        widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
        for line in table:
            padded = (text.ljust(width) for text, width in zip(line, widths, strict=True))
            self.stdout.write(("  " + "  ".join(padded)).rstrip())
