import pytest

from lifecycle.models import AccessLevel
from tests.factories import make_environments, make_user


@pytest.fixture
def environments(db):
    return make_environments()


@pytest.fixture
def viewer(environments):
    """May see every environment and change nothing."""
    return make_user("viewer", {environment: AccessLevel.VIEW for environment in environments})


@pytest.fixture
def developer(environments):
    """Publishes and deploys everywhere but Production, which they may only see."""
    return make_user(
        "developer",
        {e: (AccessLevel.VIEW if e.is_production else AccessLevel.DEPLOY) for e in environments},
    )


@pytest.fixture
def release_manager(environments):
    """Full access in every environment."""
    return make_user("release-manager", {environment: AccessLevel.FULL for environment in environments})


@pytest.fixture
def outsider(environments):
    """Logged in, but in no group with access to any environment."""
    return make_user("outsider")


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """The suite makes hundreds of users; hashing their passwords properly took most of its setup."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield
