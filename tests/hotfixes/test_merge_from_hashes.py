"""Merging from hashes: the page and the merge read only the content of the files the source changed.

The files both sides kept stay hashes: the merged version is published from its manifest, so they
never leave the database, and the number of queries does not grow with the module.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hotfixes.models import Merge
from lifecycle.models import ModuleFile
from lifecycle.snapshots import content_hash
from tests.factories import publish_files
from tests.hotfixes.test_merge_views import BASE, MERGE, current, edit, files_of, merge_form, released

pytestmark = pytest.mark.django_db


def hotfixed(environments, user, name, count):
    """A module of `count` files running everywhere, with one file changed in Pre-Production."""
    dev, qa, pre, prod = environments
    files = {"cart.py": BASE, **{f"lib/f{n:04}.py": f"n = {n}\n" for n in range(count - 1)}}
    application, (cart,) = released(environments, {"Cart": files}, name=name)
    publish_files(cart, pre, {**files, "cart.py": edit(BASE, {2: "fixed 2"})}, user=user)
    return application, cart, files


def blob_reads(queries):
    """The SQL of the queries that read file content (Blob.data)."""
    return [query["sql"] for query in queries if '"lifecycle_blob"."data"' in query["sql"]]


def not_file_rows(queries):
    return [query for query in queries if not query["sql"].startswith('INSERT INTO "lifecycle_modulefile"')]


def test_the_merge_page_and_the_merge_make_as_many_queries_at_1000_files_as_at_10(
    client, release_manager, environments, django_assert_num_queries
):
    dev, qa, pre, prod = environments
    small = hotfixed(environments, release_manager, "Small", 10)[0]
    large = hotfixed(environments, release_manager, "Large", 1000)[0]
    client.force_login(release_manager)

    def page(application):
        return client.get(MERGE, {"application": application.pk, "source": pre.pk, "target": qa.pk})

    with CaptureQueriesContext(connection) as at_10:
        assert page(small).status_code == 200
    assert len(at_10) <= 20  # issue 11's target for the merge preview
    with django_assert_num_queries(len(at_10)):
        assert page(large).status_code == 200

    # The merge itself: the same queries but for the INSERTs of the new version's file rows, which
    # bulk_create batches by the database's limit on parameters (a few hundred rows each on SQLite).
    small_form, large_form = merge_form(client, small, pre, qa), merge_form(client, large, pre, qa)
    with CaptureQueriesContext(connection) as at_10:
        assert client.post(MERGE, {**small_form, "action": "merge"}).status_code == 302
    with CaptureQueriesContext(connection) as at_1000:
        assert client.post(MERGE, {**large_form, "action": "merge"}).status_code == 302
    assert len(not_file_rows(at_1000)) == len(not_file_rows(at_10))
    assert Merge.objects.count() == 2


def test_the_merge_page_reads_the_content_of_the_changed_file_only_in_one_query(
    client, release_manager, environments
):
    dev, qa, pre, prod = environments
    application, cart, files = hotfixed(environments, release_manager, "Large", 1000)
    client.force_login(release_manager)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(MERGE, {"application": application.pk, "source": pre.pk, "target": qa.pk})

    assert response.status_code == 200
    assert "fixed 2" in response.content.decode()
    (read,) = blob_reads(queries)
    assert content_hash(BASE.encode()) in read  # the changed file, as the target has it
    assert content_hash(edit(BASE, {2: "fixed 2"}).encode()) in read
    assert content_hash(b"n = 7\n") not in read  # an untouched file


def test_merging_publishes_the_untouched_files_by_hash_without_reading_them(
    client, release_manager, environments
):
    dev, qa, pre, prod = environments
    application, cart, files = hotfixed(environments, release_manager, "Large", 1000)
    before = current(cart, qa)
    client.force_login(release_manager)
    data = merge_form(client, application, pre, qa)

    with CaptureQueriesContext(connection) as queries:
        response = client.post(MERGE, {**data, "action": "merge"})

    assert response.status_code == 302, response.content[:300]
    assert all(content_hash(b"n = 7\n") not in sql for sql in blob_reads(queries))
    merged = current(cart, qa)
    assert merged.parent == before and merged.merged_from == current(cart, pre)
    assert files_of(cart, qa) == {
        path: text.encode() for path, text in {**files, "cart.py": edit(BASE, {2: "fixed 2"})}.items()
    }
    assert merged.total_size == sum(len(text.encode()) for text in files.values()) + len("fixed 2") - len(
        "line 2"
    )
    untouched = dict(
        ModuleFile.objects.filter(version=before).exclude(path="cart.py").values_list("path", "blob")
    )
    assert dict(
        ModuleFile.objects.filter(version=merged).exclude(path="cart.py").values_list("path", "blob")
    ) == (untouched)
