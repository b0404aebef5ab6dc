"""Login with throttling (lifecycle/login_attempts.py): guessing is refused with 429, people are not."""

from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from lifecycle import login_attempts
from lifecycle.audit import client_ip


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self):
        # The cleaned username is exactly what authentication receives (stripped, NFKC): counting
        # under any other spelling would let "viewer " or "ｖｉｅｗｅｒ" escape the count.
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()  # Nothing is checked, so nothing is counted.
        address = client_ip(self.request)
        refusal = login_attempts.admit(username, address)
        if refusal:
            raise ValidationError(refusal, code="throttled")
        cleaned = super().clean()
        login_attempts.succeeded(username, address)
        return cleaned


class ThrottledLoginView(LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        if form.has_error(NON_FIELD_ERRORS, code="throttled"):
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_invalid(form)
