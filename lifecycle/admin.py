from django.contrib import admin, messages

from lifecycle import tokens
from lifecycle.models import (
    ApiToken,
    Application,
    ApplicationTag,
    CurrentVersion,
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


class EnvironmentAccessInline(admin.TabularInline):
    model = EnvironmentAccess
    extra = 0


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "position", "is_production"]
    list_editable = ["position", "is_production"]
    inlines = [EnvironmentAccessInline]


class ModuleInline(admin.TabularInline):
    model = Module
    extra = 0
    fields = ["name", "description"]
    show_change_link = True

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]
    inlines = [ModuleInline]


@admin.register(Module)
class ModuleAdmin(admin.ModelAdmin):
    list_display = ["name", "application"]
    list_filter = ["application"]
    search_fields = ["name"]


@admin.register(EnvironmentAccess)
class EnvironmentAccessAdmin(admin.ModelAdmin):
    list_display = ["group", "environment", "level"]
    list_filter = ["environment", "level", "group"]


@admin.register(ModuleVersion)
class ModuleVersionAdmin(ReadOnlyAdmin):
    list_display = ["module", "number", "parent", "merged_from", "published_in", "created_by", "created_at"]
    list_filter = ["module__application", "published_in"]
    search_fields = ["module__name", "comment"]
    list_select_related = ["module", "parent__module", "merged_from__module", "published_in", "created_by"]


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


@admin.register(ModuleChange)
class ModuleChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "kind", "module", "environment", "previous_version", "version", "user"]
    list_filter = ["kind", "environment", "module__application"]
    list_select_related = ["module", "environment", "previous_version__module", "version__module", "user"]


@admin.register(CurrentVersion)
class CurrentVersionAdmin(ReadOnlyAdmin):
    list_display = ["module", "environment", "version", "changed_at", "changed_by"]
    list_filter = ["environment", "module__application"]
    list_select_related = ["module", "environment", "version__module", "changed_by"]


@admin.register(EnvironmentTag)
class EnvironmentTagAdmin(ReadOnlyAdmin):
    list_display = ["application", "environment", "tag", "changed_at"]
    list_filter = ["environment", "application"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made here for a user and shown once; only their hash is kept, and never shown."""

    list_display = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_display_links = ["name"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke_tokens"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name"]
        return ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        token, raw = tokens.create_token(obj.user, obj.name)
        # The admin goes on with `obj` (log entry, redirect): make it the saved token.
        for field in ApiToken._meta.concrete_fields:
            setattr(obj, field.attname, getattr(token, field.attname))
        obj._state = token._state
        messages.success(
            request,
            f"The token for {token.user.get_username()} is {raw} — copy it now and hand it over securely: "
            "it is shown only this once.",
        )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        revoked = sum(tokens.revoke(token, request.user) for token in queryset.select_related("user"))
        self.message_user(request, f"Revoked {revoked} token{'s' if revoked != 1 else ''}.", messages.SUCCESS)
