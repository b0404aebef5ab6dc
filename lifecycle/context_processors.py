from lifecycle import access
from lifecycle.models import AccessLevel


def navigation(request):
    """What the top bar links to: the audit trail only for those who may read it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"can_audit": user.is_staff or AccessLevel.FULL in access.levels_for(user).values()}
