"""Every error under /api/v1/ is an RFC 9457 problem with a stable code; nothing a client sends is a 500."""

import json

import pytest
from django.test import Client

from lifecycle import tokens
from tests.factories import released_application

pytestmark = pytest.mark.django_db

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) >= PROBLEM_MEMBERS
    assert (problem["status"], problem["code"], problem["type"]) == (status, code, "about:blank")
    return problem


@pytest.fixture
def headers(developer):
    return {"Authorization": f"Bearer {tokens.create_token(developer, 'ci')[1]}"}


# The real API.


@pytest.mark.parametrize(
    "url", ["/api/v1/", "/api/v1/nothing", "/api/v1/modules/", "/api/v1/openapi.json/x", "/api/v1/%ff"]
)
def test_an_unknown_url_is_a_404_problem(client, headers, url):
    assert_problem(client.get(url, headers=headers), 404, "not_found")
    assert_problem(
        client.post(url, b"{}", content_type="application/json", headers=headers), 404, "not_found"
    )


def test_a_wrong_method_is_a_405_problem_naming_the_right_one(client, environments, headers):
    released_application("Shop", environments, module_names=("Cart",))
    for method in ("put", "patch", "delete", "post"):
        response = getattr(client, method)("/api/v1/applications/Shop", headers=headers)
        assert_problem(response, 405, "method_not_allowed")
        assert response["Allow"] == "GET"


def test_no_token_is_a_401_problem_with_a_bearer_challenge(client, environments):
    response = client.get("/api/v1/applications/Shop")
    problem = assert_problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in problem["detail"]


def test_a_browser_session_is_not_a_token(client, developer, environments):
    client.force_login(developer)
    assert_problem(client.get("/api/v1/applications/Shop"), 401, "unauthorized")


def test_a_zip_sent_as_json_is_a_415_problem(client, environments, headers):
    released_application("Shop", environments, module_names=("Cart",))
    url = "/api/v1/modules/Shop-Cart/environments/Development/versions"
    assert_problem(
        client.post(url, b"{", content_type="application/json", headers=headers),
        415,
        "unsupported_media_type",
    )


def test_a_query_parameter_of_the_wrong_type_is_a_4xx_problem(client, environments, headers):
    released_application("Shop", environments, module_names=("Cart",))
    url = "/api/v1/modules/Shop-Cart/environments/Development/versions?base_version=%C2%B2"
    problem = assert_problem(
        client.post(url, b"PK", content_type="application/zip", headers=headers), 400, "invalid_base_version"
    )
    assert "base_version" in problem["detail"]


# The edges every JSON operation shares (tests/api/urls.py builds an API as config/api.py does).


@pytest.mark.urls("tests.api.urls")
class TestJsonBodies:
    @pytest.fixture(autouse=True)
    def setup(self, client, headers):
        self.client, self.headers = client, headers

    def post(self, body, content_type="application/json"):
        return self.client.post("/api/v1/notes", body, content_type=content_type, headers=self.headers)

    def test_a_valid_body_passes(self):
        response = self.post({"text": "hello", "count": 2})
        assert response.status_code == 201 and response.json() == {"text": "hello", "count": 2}

    @pytest.mark.parametrize("body", [b"{", b"{'text': 1}", b"\xff\xfe", b"[1, 2", b"null x", b"NaN-"])
    def test_malformed_json_is_a_400_problem(self, body):
        assert_problem(self.post(body), 400, "invalid_request")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"text": "a"},
            {"text": 1, "count": 1},
            {"text": "a", "count": "many"},
            [],
            "text",
            None,
        ],
    )
    def test_a_body_not_matching_the_schema_is_a_422_problem_saying_where(self, body):
        problem = assert_problem(self.post(json.dumps(body).encode()), 422, "invalid_request")
        assert problem["errors"] and all({"loc", "msg", "type"} <= set(error) for error in problem["errors"])

    def test_an_empty_body_is_a_422_problem(self):
        assert_problem(self.post(b""), 422, "invalid_request")

    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "application/zip", "application/xml"],
    )
    def test_a_wrong_content_type_is_a_415_problem(self, content_type):
        problem = assert_problem(
            self.post(b'{"text": "a", "count": 1}', content_type), 415, "unsupported_media_type"
        )
        assert "application/json" in problem["detail"]

    def test_a_domain_refusal_carries_its_extra_members(self):
        problem = assert_problem(self.post({"text": "a", "count": -1}), 409, "negative_count")
        assert problem["findings"] == [{"code": "negative"}]

    def test_a_bug_is_a_500_problem_that_leaks_nothing(self, caplog):
        client = Client(raise_request_exception=False)
        response = client.get("/api/v1/broken", headers=self.headers)
        problem = assert_problem(response, 500, "server_error")
        assert "secret" not in response.content.decode()
        assert "secret internals" in caplog.text
        assert problem["detail"]
