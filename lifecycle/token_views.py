"""The profile page where a user makes and revokes their own API tokens."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from lifecycle import tokens
from lifecycle.htmx import HtmxHttpRequest
from lifecycle.models import ApiToken

# The raw token survives the redirect after creation in the session, and is
# removed from it the first time the page shows it: it is never shown twice.
NEW_TOKEN_SESSION_KEY = "stageboard_new_api_token"


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What the token is for, e.g. “CI pipeline” or “my laptop”.",
    )


def _render_list(request, form, status=200):
    new_token = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    token_list = list(request.user.api_tokens.all())
    if new_token and not any(t.pk == new_token["id"] and t.is_active for t in token_list):
        new_token = None
    context = {"tokens": token_list, "form": form, "new_token": new_token}
    return render(request, "lifecycle/tokens.html", context, status=status)


@never_cache  # The page may hold a raw token: no browser or proxy may keep a copy.
@login_required
@require_http_methods(["GET"])
def token_list(request: HtmxHttpRequest):
    return _render_list(request, TokenForm())


@never_cache
@login_required
@require_http_methods(["POST"])
def token_create(request: HtmxHttpRequest):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render_list(request, form, status=422)
    token, raw = tokens.create_token(request.user, form.cleaned_data["name"])
    request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "name": token.name, "raw": raw}
    return redirect("tokens:list")


@login_required
@require_http_methods(["POST"])
def token_revoke(request: HtmxHttpRequest, token_id: int):
    # Another user's token is answered as if it did not exist.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if tokens.revoke(token, request.user):
        messages.success(request, f"Revoked the token “{token.name}” ({token.prefix}…). It no longer works.")
    else:
        messages.info(request, f"The token “{token.name}” was already revoked.")
    return redirect("tokens:list")
