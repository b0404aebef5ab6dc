import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseModelFormSet, model_to_dict
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from lifecycle import access, audit, tokens, visibility
from lifecycle.delivery import addresses, agent_tokens
from lifecycle.models import (
    AccessLevel,
    AgentToken,
    ApiToken,
    Application,
    ApplicationTag,
    AuditEvent,
    CurrentVersion,
    Delivery,
    Environment,
    EnvironmentAccess,
    EnvironmentTag,
    Module,
    ModuleChange,
    ModuleVersion,
    TagMember,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is shown, never edited: versions, tags and changes are immutable."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Never copied into the append-only trail: a password hash or a signing key there could never be deleted.
SECRET_FIELDS = ["password", "webhook_secret"]


class EnvironmentScopedAdmin(ReadOnlyAdmin):
    """History in the admin shows staff what their environment access shows on the pages.

    Rows of an environment the staff member cannot view are not listed (nor found, nor
    searched), as the pages answer 404 for them; superusers see all.
    """

    environment_field = "environment"

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return rows
        return rows.filter(**{f"{self.environment_field}__in": list(access.levels_for(request.user))})


def _snapshot(obj):
    """The fields of a record as plain JSON-able values, for the audit trail's before and after."""
    data = model_to_dict(obj, exclude=SECRET_FIELDS)
    return {
        key: (list(map(str, value)) if isinstance(value, list | tuple | set) else str(value))
        for key, value in data.items()
    }


class AuditedAdmin(admin.ModelAdmin):
    """Every admin add, change and delete goes to the audit trail with before and after."""

    def _environment_of(self, obj):
        return getattr(obj, "environment", obj if isinstance(obj, Environment) else None)

    def _application_of(self, obj):
        return getattr(obj, "application", obj if isinstance(obj, Application) else None)

    def save_model(self, request, obj, form, change):
        before = _snapshot(type(obj).objects.get(pk=obj.pk)) if change and obj.pk else None
        super().save_model(request, obj, form, change)
        self._record(
            request, obj, AuditEvent.Action.ADMIN_CHANGE if change else AuditEvent.Action.ADMIN_ADD, before
        )

    def delete_model(self, request, obj):
        before = _snapshot(obj)
        environment, application, label = self._environment_of(obj), self._application_of(obj), str(obj)
        super().delete_model(request, obj)
        audit.record(
            AuditEvent.Action.ADMIN_DELETE,
            user=request.user,
            environment=environment,
            application=application,
            summary=f"Deleted {obj._meta.verbose_name} {label}",
            before=before,
        )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        befores = {o.pk: _snapshot(o) for o in formset.queryset} if hasattr(formset, "queryset") else {}
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            self._record(request, obj, AuditEvent.Action.ADMIN_ADD, None)
        for obj, _ in formset.changed_objects:
            self._record(request, obj, AuditEvent.Action.ADMIN_CHANGE, befores.get(obj.pk))
        for obj in formset.deleted_objects:
            audit.record(
                AuditEvent.Action.ADMIN_DELETE,
                user=request.user,
                environment=self._environment_of(obj),
                summary=f"Deleted {obj._meta.verbose_name} {obj}",
                before=befores.get(obj.pk),
            )

    def save_related(self, request, form, formsets, change):
        # Many-to-many fields (a user's groups) are saved here, after save_model: record them too.
        before = _snapshot(form.instance) if change else None
        super().save_related(request, form, formsets, change)
        after = _snapshot(form.instance)
        if change and before != after:
            self._record(request, form.instance, AuditEvent.Action.ADMIN_CHANGE, before)

    def _record(self, request, obj, action, before):
        verb = "Added" if action == AuditEvent.Action.ADMIN_ADD else "Changed"
        audit.record(
            action,
            user=request.user,
            environment=self._environment_of(obj),
            application=self._application_of(obj),
            summary=f"{verb} {obj._meta.verbose_name} {obj}",
            before=before,
            after=_snapshot(obj),
        )


class EnvironmentAccessInline(admin.TabularInline):
    model = EnvironmentAccess
    extra = 0


class EnvironmentForm(forms.ModelForm):
    """Positions are unique (named when taken); a webhook environment has a URL and a signing key.

    Also the changelist's form, which holds only the list's editable fields: a check of another
    field looks it up in cleaned_data only when the form has it.
    """

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("delivery", self.instance.delivery) == Delivery.WEBHOOK:
            if (
                "webhook_url" in self.fields
                and not cleaned.get("webhook_url")
                and "webhook_url" not in self.errors
            ):
                self.add_error(
                    "webhook_url", "A webhook environment needs the URL its deployments are POSTed to."
                )
            if "webhook_secret" in self.fields and not cleaned.get("webhook_secret"):
                # Made here, never typed: the receiver's operator copies it from this page.
                cleaned["webhook_secret"] = secrets.token_urlsafe(32)
            elif "webhook_secret" not in self.fields and not self.instance.webhook_secret:
                # Staff who may not see the secret (EnvironmentAdmin) still leave the environment one.
                self.instance.webhook_secret = secrets.token_urlsafe(32)
        return cleaned

    def clean_webhook_url(self):
        # Server-side request forgery: the worker would POST from inside our network. Checked
        # again at every send (webhooks.deliver), since what a name resolves to can change.
        url = self.cleaned_data["webhook_url"]
        if url:
            try:
                addresses.refuse_private(url)
            except addresses.AddressRefused as refusal:
                raise ValidationError(str(refusal)) from None
        return url

    def clean_position(self):
        position = self.cleaned_data["position"]
        holder = Environment.objects.filter(position=position).exclude(pk=self.instance.pk).first()
        if holder is not None:
            raise ValidationError(
                f"Position {position} is already taken by {holder.name}. To swap two environments, "
                "move one to a free position first."
            )
        return position


class EnvironmentPositionsFormSet(BaseModelFormSet):
    """The changelist's positions: two rows moved to one new position are refused by name."""

    def clean(self):
        taken = {}
        for form in self.forms:
            position = getattr(form, "cleaned_data", {}).get("position")
            if position is None:
                continue
            if position in taken:
                raise ValidationError(
                    f"{taken[position]} and {form.instance.name} cannot both be at position {position}."
                )
            taken[position] = form.instance.name


class AgentTokenForm(forms.Form):
    name = forms.CharField(
        max_length=AgentToken._meta.get_field("name").max_length,
        help_text="What the token is for, such as the machine its agent runs on.",
    )


@admin.register(Environment)
class EnvironmentAdmin(AuditedAdmin):
    form = EnvironmentForm
    list_display = ["name", "position", "is_production", "delivery"]
    list_editable = ["position", "is_production"]
    inlines = [EnvironmentAccessInline]
    fieldsets = [
        (None, {"fields": ["name", "position", "is_production"]}),
        (
            "Delivery",
            {
                "fields": ["delivery", "webhook_url", "webhook_secret", "agent_tokens"],
                "description": "How deployments reach the environment's machines (docs/agent.md). "
                "A blank webhook secret is made when a webhook environment is saved.",
            },
        ),
    ]
    readonly_fields = ["agent_tokens", "webhook_secret_hidden"]

    def _may_see_secret(self, request, environment) -> bool:
        # The webhook secret signs what the receiver takes for Stageboard's word: like an agent token, it
        # is for staff who may change the environment and have full access there, not any admin reader.
        return environment is None or (
            self.has_change_permission(request, environment)
            and access.can(request.user, environment, AccessLevel.FULL)
        )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self._may_see_secret(request, obj):
            return fieldsets
        return [
            (
                title,
                {
                    **options,
                    "fields": [
                        "webhook_secret_hidden" if name == "webhook_secret" else name
                        for name in options["fields"]
                    ],
                },
            )
            for title, options in fieldsets
        ]

    @admin.display(description="Webhook secret")
    def webhook_secret_hidden(self, environment):
        if not environment.webhook_secret:
            return "None yet."
        return "Set; shown only to staff who may change this environment and have full access to it."

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "webhook_url":
            kwargs["assume_scheme"] = "https"  # A URL typed without a scheme is an https one.
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Agent tokens")
    def agent_tokens(self, environment):
        if environment is None or environment.pk is None:
            return "Save the environment first."
        active = environment.agent_tokens.filter(revoked_at__isnull=True).count()
        listed = (
            reverse("admin:lifecycle_agenttoken_changelist") + f"?environment__id__exact={environment.pk}"
        )
        create = reverse("admin:lifecycle_environment_agent_token", args=[environment.pk])
        return format_html(
            '{} active (<a href="{}">list and revoke</a>) · <a href="{}">Create an agent token</a>',
            active,
            listed,
            create,
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/agent-token/",
                self.admin_site.admin_view(self.create_agent_token),
                name="lifecycle_environment_agent_token",
            ),
            *super().get_urls(),
        ]

    def create_agent_token(self, request, object_id):
        """Make an agent token and show it, this once (admin_view keeps the page out of every cache)."""
        environment = self.get_object(request, unquote(object_id))
        if environment is None or not self.has_view_or_change_permission(request, environment):
            raise Http404("There is no such environment.")
        if not request.user.has_perm("lifecycle.add_agenttoken"):
            raise PermissionDenied
        form = AgentTokenForm(request.POST or None)
        raw = None
        if request.method == "POST" and form.is_valid():
            try:
                _, raw = agent_tokens.create(environment, form.cleaned_data["name"], user=request.user)
            except ValueError as error:
                form.add_error("name", str(error))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": environment,
            "title": f"Create an agent token for {environment.name}",
            "form": form,
            "raw_token": raw,
        }
        return TemplateResponse(request, "admin/lifecycle/environment/agent_token.html", context)

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=EnvironmentForm, **kwargs)

    def get_changelist_formset(self, request, **kwargs):
        return super().get_changelist_formset(request, formset=EnvironmentPositionsFormSet, **kwargs)


class ModuleInline(admin.TabularInline):
    model = Module
    extra = 0
    fields = ["name", "description"]
    show_change_link = True

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(AuditedAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]
    inlines = [ModuleInline]


@admin.register(Module)
class ModuleAdmin(AuditedAdmin):
    list_display = ["name", "application"]
    list_filter = ["application"]
    search_fields = ["name"]


@admin.register(EnvironmentAccess)
class EnvironmentAccessAdmin(AuditedAdmin):
    list_display = ["group", "environment", "level"]
    list_filter = ["environment", "level", "group"]


@admin.register(ModuleVersion)
class ModuleVersionAdmin(ReadOnlyAdmin):
    list_display = ["module", "number", "parent", "merged_from", "published_in", "created_by", "created_at"]
    list_filter = ["module__application", "published_in"]
    search_fields = ["module__name", "comment"]
    list_select_related = ["module", "parent__module", "merged_from__module", "published_in", "created_by"]

    def get_queryset(self, request):
        # Only the versions the staff member may read (lifecycle.visibility), as on the pages.
        readable = visibility.every_visible_version(request.user)
        return super().get_queryset(request).filter(pk__in=readable.values("pk"))


class TagMemberInline(admin.TabularInline):
    model = TagMember
    extra = 0
    readonly_fields = ["module", "version"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApplicationTag)
class ApplicationTagAdmin(ReadOnlyAdmin):
    list_display = ["application", "number", "environment", "created_by", "created_at"]
    list_filter = ["application", "environment"]
    inlines = [TagMemberInline]

    def get_queryset(self, request):
        # Only tags all of whose versions the staff member may read, as on the application page.
        readable = visibility.visible_tags(request.user)
        return super().get_queryset(request).filter(pk__in=readable.values("pk"))


@admin.register(ModuleChange)
class ModuleChangeAdmin(EnvironmentScopedAdmin):
    list_display = ["at", "kind", "module", "environment", "previous_version", "version", "user"]
    list_filter = ["kind", "environment", "module__application"]
    list_select_related = ["module", "environment", "previous_version__module", "version__module", "user"]


@admin.register(CurrentVersion)
class CurrentVersionAdmin(EnvironmentScopedAdmin):
    list_display = ["module", "environment", "version", "changed_at", "changed_by"]
    list_filter = ["environment", "module__application"]
    list_select_related = ["module", "environment", "version__module", "changed_by"]


@admin.register(EnvironmentTag)
class EnvironmentTagAdmin(EnvironmentScopedAdmin):
    list_display = ["application", "environment", "tag", "changed_at"]
    list_filter = ["environment", "application"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here, never made or edited.

    A token acts with all its owner's rights, so only its owner makes it, on
    their API tokens page: a form here for "any user" let staff mint a token for
    a superuser. Only the token's hash is kept, and it is never shown.
    """

    list_display = [
        "user",
        "name",
        "prefix",
        "read_only",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_display_links = ["name"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke_tokens"]
    fields = ["user", "name", "prefix", "read_only", "created_at", "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # "Change" allows the revoke action on the list; no single token is ever edited.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # Revoked tokens stay listed: they tell whose token was used until when.

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        # The staff member revoking is the actor the audit trail records, not the tokens' owners.
        revoked = sum(tokens.revoke(token, request.user) for token in queryset.select_related("user"))
        self.message_user(request, f"Revoked {revoked} token{'s' if revoked != 1 else ''}.", messages.SUCCESS)


@admin.register(AgentToken)
class AgentTokenAdmin(admin.ModelAdmin):
    """Agent tokens are listed and revoked here, never edited; they are made on their environment's page.

    Staff see the tokens of the environments they can view, as the pages show them.
    """

    list_display = [
        "environment",
        "name",
        "prefix",
        "created_by",
        "created_at",
        "last_seen_at",
        "interval_seconds",
        "revoked_at",
    ]
    list_display_links = ["name"]
    list_filter = ["environment", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    list_select_related = ["environment", "created_by"]
    actions = ["revoke_tokens"]
    fields = list_display
    readonly_fields = fields

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return rows
        return rows.filter(environment__in=list(access.levels_for(request.user)))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # "Change" allows the revoke action on the list; no single token is ever edited.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False  # Revoked tokens stay listed: they tell which machine could deliver until when.

    @admin.action(description="Revoke selected agent tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        tokens = list(queryset.select_related("environment"))
        # All or none: revoking needs full access to each token's environment (agent_tokens.revoke).
        refused = sorted(
            {
                t.environment.name
                for t in tokens
                if not access.can(request.user, t.environment, AccessLevel.FULL)
            }
        )
        if refused:
            self.message_user(
                request,
                f"Nothing was revoked: revoking an agent token needs full access to its environment "
                f"({', '.join(refused)}).",
                messages.ERROR,
            )
            return
        revoked = sum(agent_tokens.revoke(token, request.user) for token in tokens)
        self.message_user(
            request, f"Revoked {revoked} agent token{'s' if revoked != 1 else ''}.", messages.SUCCESS
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "username", "ip", "environment", "application", "summary"]
    list_filter = ["action", "environment"]
    search_fields = ["username", "summary", "application"]

    def get_queryset(self, request):
        # The same rows as the audit page: staff see only what their environment access shows.
        return audit.visible_to(request.user, super().get_queryset(request))


# Group membership is access: changes to users and groups go to the audit trail too.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    def user_change_password(self, request, id, form_url=""):
        # Django's password form saves without save_model: setting someone's password lets
        # whoever sets it log in as them, so it is recorded here, with the change, by the actor.
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = User.objects.get(pk=unquote(id))
                usable = user.has_usable_password()
                audit.record(
                    AuditEvent.Action.ADMIN_CHANGE,
                    user=request.user,
                    summary=f"{'Set' if usable else 'Disabled'} the password of user {user}",
                    after={"password": "set" if usable else "disabled"},
                )
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass
