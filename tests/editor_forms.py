"""What the editor's forms send besides what the user types: the draft and revision their page showed.

Tests that post to the editor's URLs take these from the page, as a browser does, so that they
post a current form (a form without them is refused as stale, 409).
"""

import re

from django.urls import reverse


def editor_fields(client, module, environment, path=None) -> dict[str, str]:
    """The hidden fields of the editor's forms, read from the editor page (which opens a draft if needed).

    With `path`, also `from_hash`: the content of that file the page showed.
    """
    query = {"path": path} if path else {}
    page = client.get(reverse("lifecycle:editor", args=[module.pk, environment.pk]), query)
    assert page.status_code == 200, page.status_code
    html = page.content.decode()
    fields = {
        "draft": re.search(r'name="draft" value="(\d+)"', html)[1],
        "revision": re.search(r'name="revision" value="(\d+)"', html)[1],
    }
    if path:
        fields["from_hash"] = re.search(r'name="from_hash" value="([0-9a-f]{64})"', html)[1]
    return fields


def draft_fields(user, module, environment, path=None) -> dict[str, object]:
    """The same fields without a page, from the user's draft (opened if needed): for built requests."""
    from lifecycle.editing import open_draft

    draft = open_draft(user, module, environment)
    fields = {"draft": draft.pk, "revision": draft.revision}
    if path in draft.manifest:
        fields["from_hash"] = draft.manifest[path]
    return fields
