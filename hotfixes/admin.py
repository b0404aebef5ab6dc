from django.contrib import admin

from hotfixes.models import Hotfix, HotfixChange
from lifecycle.admin import EnvironmentScopedAdmin


class HotfixChangeInline(admin.TabularInline):
    model = HotfixChange
    extra = 0
    readonly_fields = ["module", "version", "replaced_version", "at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Hotfix)
class HotfixAdmin(EnvironmentScopedAdmin):
    list_display = ["application", "environment", "opened_at", "opened_by", "solved_at", "solved_by"]
    list_filter = ["environment", "application"]
    inlines = [HotfixChangeInline]
