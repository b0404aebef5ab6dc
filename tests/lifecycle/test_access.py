import pytest
from django.core.exceptions import PermissionDenied

from lifecycle import access
from lifecycle.models import AccessLevel, EnvironmentAccess
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_it_gives_each_persona_its_levels(environments, viewer, developer, release_manager, outsider):
    dev, qa, pre, prod = environments
    assert access.level_in(viewer, prod) == AccessLevel.VIEW
    assert access.can(developer, pre, AccessLevel.DEPLOY)
    assert not access.can(developer, prod, AccessLevel.PUBLISH)
    assert access.can(release_manager, prod, AccessLevel.FULL)
    assert access.level_in(outsider, dev) is None
    assert access.visible_environments(outsider) == []
    assert access.visible_environments(developer) == environments


def test_it_takes_the_highest_level_of_a_users_groups(environments):
    dev = environments[0]
    user = make_user("two-hats", {dev: AccessLevel.VIEW})
    other = make_user("other", {dev: AccessLevel.DEPLOY})
    user.groups.add(*other.groups.all())
    assert access.level_in(user, dev) == AccessLevel.DEPLOY


def test_it_gives_superusers_full_access(environments, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    assert all(access.level_in(root, e) == AccessLevel.FULL for e in environments)


def test_it_refuses_with_a_message_naming_level_and_environment(environments, viewer):
    with pytest.raises(PermissionDenied, match="You need publish access to Production"):
        access.require(viewer, environments[3], AccessLevel.PUBLISH)


def test_it_reads_levels_once_per_request(environments, developer, django_assert_num_queries):
    with django_assert_num_queries(1):
        for environment in environments:
            access.level_in(developer, environment)


def test_it_refuses_an_unknown_level_in_the_database(environments):
    from django.contrib.auth.models import Group
    from django.db import IntegrityError

    group = Group.objects.create(name="odd")
    with pytest.raises(IntegrityError):
        EnvironmentAccess.objects.create(group=group, environment=environments[0], level=25)
