"""Make sure a local administrator exists and print how to log in.

For `make run` on a development machine: the password is generated once,
kept in `.admin-password` (git-ignored) and printed on every start.
"""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the local 'admin' superuser if missing and print its login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password-file", default=str(Path(settings.BASE_DIR) / ".admin-password"))

    def handle(self, *args, username, password_file, **options):
        User = get_user_model()
        path = Path(password_file)
        user = User.objects.filter(username=username).first()
        if user is None or not path.exists():
            password = secrets.token_urlsafe(12)
            if user is None:
                User.objects.create_superuser(username=username, email="", password=password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            path.write_text(password + "\n")
            path.chmod(0o600)
        password = path.read_text().strip()
        self.stdout.write(self.style.SUCCESS(f"Log in at http://127.0.0.1:8000 as {username} / {password}"))
