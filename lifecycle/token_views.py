"""The profile page where a user makes and revokes their own API tokens."""

from datetime import UTC, datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from lifecycle import tokens
from lifecycle.htmx import HtmxHttpRequest
from lifecycle.models import ApiToken

# Earlier releases kept a new raw token in the session under this key until the page showed it:
# whatever is left there is dropped the next time the page is opened.
LEGACY_SESSION_KEY = "stageboard_new_api_token"


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What the token is for, e.g. “CI pipeline” or “my laptop”.",
    )
    read_only = forms.BooleanField(required=False, help_text="It may only read (GET), never change anything.")
    expires_on = forms.DateField(
        required=False, help_text="It stops working at the start of this day (00:00 UTC). Empty: never."
    )

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.now().astimezone(UTC).date():
            raise forms.ValidationError("The expiry date must be after today.")
        return day

    def expires_at(self):
        day = self.cleaned_data["expires_on"]
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _render_list(request, form, status=200, new_token=None):
    context = {"tokens": list(request.user.api_tokens.all()), "form": form, "new_token": new_token}
    return render(request, "lifecycle/tokens.html", context, status=status)


@never_cache  # The page may hold a raw token: no browser or proxy may keep a copy.
@login_required
@require_http_methods(["GET"])
def token_list(request: HtmxHttpRequest):
    request.session.pop(LEGACY_SESSION_KEY, None)
    return _render_list(request, TokenForm())


@never_cache
@login_required
@require_http_methods(["POST"])
def token_create(request: HtmxHttpRequest):
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _render_list(request, form, status=422)
    token, raw = tokens.create_token(
        request.user,
        form.cleaned_data["name"],
        read_only=form.cleaned_data["read_only"],
        expires_at=form.expires_at(),
    )
    # Shown in this very response and kept nowhere (no session, no message): it cannot leak later.
    new_token = {"name": token.name, "raw": raw}
    return _render_list(request, TokenForm(), new_token=new_token)


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
