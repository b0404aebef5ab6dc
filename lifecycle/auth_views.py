"""Login with throttling: too many failures for one username or from one address lock it for a while.

Failures are counted in the audit trail, in the database, so every process
behind the load balancer sees the same count.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.db.models import Q
from django.forms.utils import ErrorDict
from django.utils import timezone

from lifecycle.audit import client_ip
from lifecycle.models import AuditEvent


def recent_failures(username: str, ip: str | None) -> int:
    since = timezone.now() - timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)
    who = Q(username__iexact=username[:150]) if username else Q(pk__in=[])
    if ip:
        who |= Q(ip=ip)
    return AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED, at__gte=since).filter(who).count()


class ThrottledLoginView(LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if recent_failures(username, client_ip(request)) >= settings.LOGIN_FAILURES_ALLOWED:
            # Not validated: checking the password would count as one more try.
            form = self.get_form()
            form.cleaned_data, form._errors = {}, ErrorDict()
            form.add_error(
                None,
                f"Too many failed logins. Try again in {settings.LOGIN_FAILURE_WINDOW_MINUTES} minutes, "
                "or ask an administrator.",
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)
