from django.apps import AppConfig


class HotfixesConfig(AppConfig):
    name = "hotfixes"
    verbose_name = "Hotfixes"
