"""Plain helpers that build real records through the same code paths the console uses."""

from django.contrib.auth.models import Group, User

from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import AccessLevel, Application, Environment, EnvironmentAccess, Module
from lifecycle.publishing import publish
from lifecycle.tagging import tag_environment

PIPELINE = ["Development", "Quality Assurance", "Pre-Production", "Production"]


def make_environments(names=PIPELINE):
    return [
        Environment.objects.create(name=name, position=index + 1, is_production=(name == "Production"))
        for index, name in enumerate(names)
    ]


def make_user(username, levels=None, **extra):
    """A user whose own group has `levels`: {environment: AccessLevel}."""
    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    if levels:
        group = Group.objects.create(name=f"{username}-group")
        user.groups.add(group)
        EnvironmentAccess.objects.bulk_create(
            EnvironmentAccess(group=group, environment=environment, level=level)
            for environment, level in levels.items()
        )
    return user


def make_application(name, module_names=("Core",)):
    application = Application.objects.create(name=name)
    modules = [Module.objects.create(application=application, name=f"{name}-{m}") for m in module_names]
    return application, modules


def publish_files(module, environment, files, user=None, comment=""):
    encoded = {
        path: content.encode() if isinstance(content, str) else content for path, content in files.items()
    }
    return publish(module, environment, encoded, user=user, comment=comment).version


def released_application(name, environments, module_names=("Core",), number="0.3"):
    """An application whose modules are published in the first environment, tagged and deployed everywhere."""
    application, modules = make_application(name, module_names)
    first = environments[0]
    for module in modules:
        publish_files(module, first, {"main.py": f"# {module.name}\nprint('hello')\n"})
    tag = tag_environment(application, first, number)
    for environment in environments[1:]:
        deploy_tag(tag, environment)
    return application, modules, tag


__all__ = ["AccessLevel", "make_environments", "make_user", "make_application", "publish_files"]
