from django.contrib import admin

from lifecycle.models import (
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
