"""A stageboard.json published before publishing refused malformed ones (issue 9, item 17).

Publishing now refuses such a file, so these tests write the old version straight
through the ORM, as it sits in databases from before. At deploy it is a finding
naming the module and version, never a server error.
"""

import pytest
from django.urls import reverse

from lifecycle.deploying.running import start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import Blob, CurrentVersion, Deployment, ModuleFile, ModuleVersion
from lifecycle.snapshots import content_hash, is_binary, tree_hash
from tests.factories import make_application, publish_files

pytestmark = pytest.mark.django_db

MALFORMED = {
    "uses is a number": b'{"uses": 5}',
    "uses is null": b'{"uses": null}',
    "deeply nested": b'{"uses": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "a list, not an object": b'["Pay-Payments"]',
    "not JSON": b"{uses: Pay}",
    "not UTF-8": b'{"uses": ["Caf\xe9"]}',
    "a name that is not text": b'{"uses": [1, "Pay-Payments"]}',
    # Valid JSON escapes that name no module: a lone surrogate cannot even be written out as
    # UTF-8, so the dialog naming it answered 500; a NUL cannot reach PostgreSQL.
    "a name that is not valid Unicode": b'{"uses": ["\\ud800"]}',
    "a name with a NUL": b'{"uses": ["Pay\\u0000Payments"]}',
    "uses given twice": b'{"uses": 5, "uses": ["Pay-Payments"]}',
}


def publish_unchecked(module, environment, files: dict[str, bytes]) -> ModuleVersion:
    """Make `files` the module's current version in `environment`, bypassing publish's checks."""
    for data in files.values():
        Blob.objects.get_or_create(
            hash=content_hash(data), defaults={"data": data, "size": len(data), "is_binary": is_binary(data)}
        )
    manifest = {path: content_hash(data) for path, data in files.items()}
    current = CurrentVersion.objects.filter(module=module, environment=environment).first()
    version = ModuleVersion.objects.create(
        module=module,
        number=module.versions.count() + 1,
        parent=current.version if current else None,
        tree_hash=tree_hash(manifest),
        file_count=len(files),
        total_size=sum(map(len, files.values())),
        published_in=environment,
    )
    ModuleFile.objects.bulk_create(
        ModuleFile(version=version, path=p, blob_id=h) for p, h in manifest.items()
    )
    CurrentVersion.objects.update_or_create(
        module=module,
        environment=environment,
        defaults={"version": version, "changed_at": version.created_at},
    )
    return version


@pytest.fixture
def shop(environments):
    dev = environments[0]
    shop, (web,) = make_application("Shop", ["Web"])
    _, (payments,) = make_application("Pay", ["Payments"])
    publish_files(payments, dev, {"pay.py": "x"})
    return shop, web


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_validation_reports_it_as_a_finding(environments, shop, content):
    dev, qa, _, _ = environments
    application, web = shop
    version = publish_unchecked(web, dev, {"web.py": b"x", "stageboard.json": content})

    (item,) = validate(dev, qa, [application]).items
    (finding,) = [f for f in item.findings if f.code == "malformed_dependencies"]
    assert finding.severity == "error" and item.has_errors
    assert f"Shop-Web v{version.number}" in finding.message and "stageboard.json" in finding.message
    assert finding.modules == [{"module": "Shop-Web", "version": version.number}]
    assert "missing_dependency" not in [f.code for f in item.findings]


def test_starting_the_deployment_is_refused_and_writes_nothing(environments, shop, release_manager):
    dev, qa, _, _ = environments
    application, web = shop
    publish_unchecked(web, dev, {"web.py": b"x", "stageboard.json": b'{"uses": 5}'})
    validation = validate(dev, qa, [application])
    with pytest.raises(DeploymentRefused, match="stageboard.json"):
        start_deployment(dev, qa, [application], user=release_manager, fingerprint=validation.fingerprint)
    assert not Deployment.objects.exists()


@pytest.mark.parametrize(
    "content",
    [MALFORMED["uses is null"], MALFORMED["deeply nested"], MALFORMED["a name that is not valid Unicode"]],
    ids=["null", "deep", "surrogate"],
)
def test_the_pages_answer_with_the_finding_not_a_500(client, environments, shop, release_manager, content):
    dev, qa, _, _ = environments
    application, web = shop
    publish_unchecked(web, dev, {"web.py": b"x", "stageboard.json": content})
    client.force_login(release_manager)

    for query in ({"application": application.pk}, {"all": "differences"}):
        response = client.get(reverse("lifecycle:deploy"), {"source": dev.pk, "target": qa.pk, **query})
        assert response.status_code == 200
        assert 'data-code="malformed_dependencies"' in response.content.decode()

    response = client.post(
        reverse("lifecycle:deploy-run"),
        {"source": dev.pk, "target": qa.pk, "application": application.pk, "fingerprint": "stale"},
    )
    assert response.status_code == 409
    assert not Deployment.objects.exists()


def test_a_well_formed_file_still_finds_a_missing_dependency(environments, shop):
    dev, qa, _, _ = environments
    application, web = shop
    publish_unchecked(
        web, dev, {"web.py": b"x", "stageboard.json": b'\xef\xbb\xbf{"uses": ["Pay-Payments"]}'}
    )
    (item,) = validate(dev, qa, [application]).items
    assert [f.code for f in item.findings] == ["missing_dependency"]
