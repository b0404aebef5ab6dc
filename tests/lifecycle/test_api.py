import io
import zipfile
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle import tokens
from lifecycle.models import AccessLevel, ApiToken, Blob, ModuleChange, ModuleVersion
from tests.factories import make_application, make_user, publish_files, released_application
from tests.zips import HOSTILE, hostile, make_zip

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n\0\0\xff\xfe binary"


@pytest.fixture
def shop(environments):
    """Shop-Cart v1 runs everywhere as Shop 0.3."""
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    return application, cart


def auth(user):
    _, raw = tokens.create_token(user, "test")
    return {"Authorization": f"Bearer {raw}"}


def publish_url(module, environment, **query):
    url = reverse("api:publish", args=[module.name, environment.name])
    if query:
        url += "?" + urlencode(query)
    return url


def post_zip(client, url, body, headers):
    return client.post(url, data=body, content_type="application/zip", headers=headers)


def assert_error(response, status, code):
    """An RFC 9457 problem with the stable `code`; returns it."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["code"] == code
    assert problem["type"] and problem["title"] and problem["detail"]
    return problem


def zipped_files(response):
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return {name: archive.read(name) for name in archive.namelist()}


# Authentication.


def test_it_refuses_requests_without_a_token(client, developer, shop):
    _, cart = shop
    url = reverse("api:application", args=["Shop"])
    response = client.get(url)
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")
    client.force_login(developer)  # a browser session is not enough
    assert_error(client.get(url), 401, "unauthorized")
    assert_error(client.get(url, headers={"Authorization": "Basic ZGV2OnB3"}), 401, "unauthorized")


def test_it_refuses_a_wrong_token(client, developer, shop):
    auth(developer)
    response = client.get(
        reverse("api:application", args=["Shop"]), headers={"Authorization": "Bearer sb_" + "x" * 40}
    )
    assert_error(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_it_refuses_a_revoked_token(client, developer, shop):
    headers = auth(developer)
    url = reverse("api:application", args=["Shop"])
    assert client.get(url, headers=headers).status_code == 200
    tokens.revoke(ApiToken.objects.get(), developer)
    assert_error(client.get(url, headers=headers), 401, "unauthorized")


def test_it_records_when_a_token_was_last_used(client, developer, shop):
    headers = auth(developer)
    client.get(reverse("api:application", args=["Shop"]), headers=headers)
    assert ApiToken.objects.get().last_used_at is not None


def test_it_sets_no_cookies(client, developer, shop):
    response = client.get(reverse("api:application", args=["Shop"]), headers=auth(developer))
    assert not response.cookies


# Publishing.


def test_it_publishes_a_zip_as_a_new_version(environments, developer, shop):
    _, cart = shop
    # No CSRF token, as any API client: token authentication needs none.
    client = Client(enforce_csrf_checks=True)
    body = make_zip({"cart.py": b"print('v2')\n", "static/logo.png": PNG})
    response = post_zip(client, publish_url(cart, environments[0], comment="From CI"), body, auth(developer))
    assert response.status_code == 201, response.content
    data = response.json()
    version = ModuleVersion.objects.get(module=cart, number=2)
    assert data == {
        "module": "Shop-Cart",
        "environment": "Development",
        "version": 2,
        "created": True,
        "previous_version": 1,
        "tree_hash": version.tree_hash,
        "hotfix": None,
        "message": "Published Shop-Cart v2 to Development.",
    }
    assert version.comment == "From CI" and version.created_by == developer
    assert response["Location"] == reverse("api:version-archive", args=["Shop-Cart", 2])
    assert not Hotfix.objects.exists()


def test_it_answers_no_changes_for_identical_content(client, environments, developer, shop):
    _, cart = shop
    headers = auth(developer)
    body = make_zip({"cart.py": b"print('v2')\n", "static/logo.png": PNG})
    assert post_zip(client, publish_url(cart, environments[0]), body, headers).status_code == 201
    versions, blobs, changes = (
        ModuleVersion.objects.count(),
        Blob.objects.count(),
        ModuleChange.objects.count(),
    )
    again = post_zip(client, publish_url(cart, environments[0]), body, headers)
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["version"] == 2
    assert "No changes" in again.json()["message"]
    assert (ModuleVersion.objects.count(), Blob.objects.count(), ModuleChange.objects.count()) == (
        versions,
        blobs,
        changes,
    )


def test_it_opens_a_hotfix_when_publishing_into_pre_production(client, environments, developer, shop):
    application, cart = shop
    pre_production = environments[2]
    response = post_zip(
        client, publish_url(cart, pre_production), make_zip({"fix.py": b"fixed"}), auth(developer)
    )
    assert response.status_code == 201
    hotfix = Hotfix.objects.get()
    assert (hotfix.application, hotfix.environment) == (application, pre_production)
    assert response.json()["hotfix"] == {"id": hotfix.pk, "environment": "Pre-Production"}


def test_it_finds_environments_by_their_exact_url_encoded_name(client, environments, developer, shop):
    body = make_zip({"qa.py": b"qa"})
    url = "/api/v1/modules/Shop-Cart/environments/Quality%20Assurance/versions"
    response = post_zip(client, url, body, auth(developer))
    assert response.status_code == 201 and response.json()["environment"] == "Quality Assurance"
    assert_error(post_zip(client, url.replace("Quality", "quality"), body, auth(developer)), 404, "not_found")
    wrong_module = "/api/v1/modules/shop-cart/environments/Development/versions"
    assert_error(post_zip(client, wrong_module, body, auth(developer)), 404, "not_found")


def test_it_refuses_a_viewer_and_writes_nothing(client, environments, viewer, shop):
    _, cart = shop
    before = ModuleVersion.objects.count()
    response = post_zip(client, publish_url(cart, environments[0]), make_zip({"x.py": b"x"}), auth(viewer))
    assert_error(response, 403, "forbidden")
    assert ModuleVersion.objects.count() == before


def test_it_refuses_a_developer_in_production(client, environments, developer, shop):
    _, cart = shop
    before = ModuleVersion.objects.count()
    response = post_zip(client, publish_url(cart, environments[3]), make_zip({"x.py": b"x"}), auth(developer))
    assert_error(response, 403, "forbidden")
    assert ModuleVersion.objects.count() == before
    assert not Hotfix.objects.exists()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_it_refuses_a_bad_zip_with_its_code_and_writes_nothing(client, environments, developer, shop, name):
    _, cart = shop
    body, code = hostile(name)
    counts = ModuleVersion.objects.count(), Blob.objects.count(), Hotfix.objects.count()
    response = post_zip(client, publish_url(cart, environments[2]), body, auth(developer))
    error = assert_error(response, 400, code or response.json()["code"])
    assert error["code"] != "server_error"
    assert (ModuleVersion.objects.count(), Blob.objects.count(), Hotfix.objects.count()) == counts


def test_it_refuses_an_archive_over_the_limit(client, environments, developer, shop, settings):
    _, cart = shop
    settings.MODULE_MAX_ARCHIVE_BYTES = 200
    body = make_zip({f"file{n}.py": f"# {n} " * 20 for n in range(10)})
    assert len(body) > 200
    before = ModuleVersion.objects.count()
    assert_error(
        post_zip(client, publish_url(cart, environments[0]), body, auth(developer)), 413, "archive_too_large"
    )
    assert ModuleVersion.objects.count() == before


def test_it_refuses_a_body_that_is_not_a_zip_upload(client, environments, developer, shop):
    _, cart = shop
    response = client.post(publish_url(cart, environments[0]), {"archive": "x"}, headers=auth(developer))
    assert_error(response, 415, "unsupported_media_type")


def test_it_refuses_a_stale_base_version(client, environments, developer, shop):
    _, cart = shop
    headers = auth(developer)
    development = environments[0]
    assert (
        post_zip(client, publish_url(cart, development), make_zip({"a.py": b"a"}), headers).status_code == 201
    )
    before = ModuleVersion.objects.count()
    stale = post_zip(
        client, publish_url(cart, development, base_version=1), make_zip({"b.py": b"b"}), headers
    )
    error = assert_error(stale, 409, "stale")
    assert "v2 is current" in error["detail"]
    assert ModuleVersion.objects.count() == before
    current = post_zip(
        client, publish_url(cart, development, base_version=2), make_zip({"b.py": b"b"}), headers
    )
    assert current.status_code == 201 and current.json()["version"] == 3
    missing = post_zip(
        client, publish_url(cart, development, base_version=99), make_zip({"c.py": b"c"}), headers
    )
    assert_error(missing, 409, "stale")
    bad = post_zip(
        client, publish_url(cart, development, base_version="two"), make_zip({"c.py": b"c"}), headers
    )
    assert_error(bad, 400, "invalid_base_version")


# Downloading.


def test_it_downloads_a_version_byte_for_byte(client, environments, developer, viewer, shop):
    _, cart = shop
    files = {"cart.py": b"print('v2')\r\n", "static/logo.png": PNG, "empty.txt": b""}
    post_zip(client, publish_url(cart, environments[0]), make_zip(files), auth(developer))
    response = client.get(reverse("api:version-archive", args=["Shop-Cart", 2]), headers=auth(viewer))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="Shop-Cart-v2.zip"'
    assert zipped_files(response) == files
    first = client.get(reverse("api:version-archive", args=["Shop-Cart", 1]), headers=auth(viewer))
    assert set(zipped_files(first)) == {"main.py"}


def test_it_downloads_the_current_version_in_an_environment(client, environments, developer, viewer, shop):
    _, cart = shop
    post_zip(client, publish_url(cart, environments[2]), make_zip({"fix.py": PNG}), auth(developer))
    url = "/api/v1/modules/Shop-Cart/environments/Pre-Production/archive"
    response = client.get(url, headers=auth(viewer))
    assert response.status_code == 200
    assert response["Stageboard-Module-Version"] == "2"
    assert zipped_files(response) == {"fix.py": PNG}
    production = client.get(
        reverse("api:environment-archive", args=["Shop-Cart", "Production"]), headers=auth(viewer)
    )
    assert set(zipped_files(production)) == {"main.py"}


def test_it_lets_a_user_download_where_the_application_runs(client, environments, shop):
    production_only = make_user("auditor", {environments[3]: AccessLevel.VIEW})
    headers = auth(production_only)
    assert (
        client.get(reverse("api:version-archive", args=["Shop-Cart", 1]), headers=headers).status_code == 200
    )
    response = client.get(
        reverse("api:environment-archive", args=["Shop-Cart", "Development"]), headers=headers
    )
    # An environment the user cannot see answers like one that does not exist.
    assert_error(response, 404, "not_found")


def test_it_refuses_downloads_to_users_without_access(client, environments, outsider, shop):
    headers = auth(outsider)
    assert_error(
        client.get(reverse("api:version-archive", args=["Shop-Cart", 1]), headers=headers), 403, "forbidden"
    )
    response = client.get(
        reverse("api:environment-archive", args=["Shop-Cart", "Development"]), headers=headers
    )
    assert_error(response, 404, "not_found")


def test_it_answers_404_for_unknown_modules_versions_and_environments(client, environments, viewer, shop):
    headers = auth(viewer)
    for url in [
        reverse("api:version-archive", args=["Nope", 1]),
        reverse("api:version-archive", args=["Shop-Cart", 9]),
        reverse("api:environment-archive", args=["Shop-Cart", "Staging"]),
        reverse("api:application", args=["Nope"]),
    ]:
        assert_error(client.get(url, headers=headers), 404, "not_found")
    _, (lonely,), _ = released_application("Other", environments[:1], module_names=("Lonely",))
    response = client.get(
        reverse("api:environment-archive", args=[lonely.name, "Production"]), headers=headers
    )
    error = assert_error(response, 404, "not_found")
    assert "no version in Production" in error["detail"]


# The application's state.


def test_it_describes_a_released_application(client, environments, viewer, shop):
    response = client.get(reverse("api:application", args=["Shop"]), headers=auth(viewer))
    assert response.status_code == 200
    assert response.json() == {
        "application": "Shop",
        "environments": [
            {
                "name": environment.name,
                "position": environment.position,
                "is_production": environment.is_production,
                "version": "0.3",
                "tag": "0.3",
                "plus": False,
                "open_hotfix": False,
                "modules": {"Shop-Cart": 1},
                "delivery": {"state": "record", "version": None, "reported_at": None},
            }
            for environment in environments
        ],
    }


def test_it_shows_a_hotfix_in_the_state(client, environments, developer, shop):
    headers = auth(developer)
    post_zip(
        client,
        "/api/v1/modules/Shop-Cart/environments/Pre-Production/versions",
        make_zip({"f": b"f"}),
        headers,
    )
    cells = client.get(reverse("api:application", args=["Shop"]), headers=headers).json()["environments"]
    by_name = {cell["name"]: cell for cell in cells}
    assert by_name["Pre-Production"] | {"modules": None} == {
        "name": "Pre-Production",
        "position": 3,
        "is_production": False,
        "version": "0.3+",
        "tag": "0.3",
        "plus": True,
        "open_hotfix": True,
        "modules": None,
        "delivery": {"state": "record", "version": None, "reported_at": None},
    }
    assert by_name["Pre-Production"]["modules"] == {"Shop-Cart": 2}
    assert by_name["Production"]["version"] == "0.3" and by_name["Production"]["modules"] == {"Shop-Cart": 1}


def test_it_shows_only_the_environments_a_user_sees(client, environments, shop):
    qa_only = make_user("tester", {environments[1]: AccessLevel.PUBLISH})
    response = client.get(reverse("api:application", args=["Shop"]), headers=auth(qa_only))
    assert [cell["name"] for cell in response.json()["environments"]] == ["Quality Assurance"]


def test_it_shows_a_dash_before_the_first_tag(client, environments, release_manager):
    _, (core,) = make_application("Fresh")
    publish_files(core, environments[0], {"a.py": "a"})
    cells = client.get(reverse("api:application", args=["Fresh"]), headers=auth(release_manager)).json()
    development = cells["environments"][0]
    assert (development["version"], development["tag"], development["plus"]) == ("–+", None, True)
    assert cells["environments"][1]["modules"] == {} and cells["environments"][1]["version"] == "–"


def test_it_refuses_the_state_to_users_without_access(client, outsider, shop):
    assert_error(
        client.get(reverse("api:application", args=["Shop"]), headers=auth(outsider)), 403, "forbidden"
    )


def test_it_reads_the_state_in_a_fixed_number_of_queries(
    client, environments, viewer, django_assert_max_num_queries
):
    released_application("Big", environments, module_names=[f"M{n}" for n in range(20)])
    headers = auth(viewer)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("api:application", args=["Big"]), headers=headers)
    assert len(response.json()["environments"][0]["modules"]) == 20


# Errors are problems everywhere under /api/v1/.


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/",
        "/api/v1/nothing/here",
        "/api/v1/applications/Shop/",
        "/api/v1/modules/Shop-Cart/versions/x/archive",
    ],
)
def test_it_answers_unknown_api_urls_with_a_problem(client, url):
    assert_error(client.get(url), 404, "not_found")


def test_it_answers_a_wrong_method_with_a_problem(client, environments, developer, shop):
    _, cart = shop
    response = client.get(publish_url(cart, environments[0]), headers=auth(developer))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    response = client.delete(reverse("api:application", args=["Shop"]), headers=auth(developer))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"


def test_it_answers_a_server_error_with_a_problem(client, environments, viewer, shop, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("lifecycle.api.applications.build_rows", broken)
    response = client.get(reverse("api:application", args=["Shop"]), headers=auth(viewer))
    assert_error(response, 500, "server_error")
    assert "a bug" in caplog.text
