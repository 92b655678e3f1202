from django.contrib import admin

from accounts.models import ApiToken, SsoIdentity
from accounts.passwords import AdminLoginForm

# The admin's sign-in form follows the password switches (PASSWORD_LOGIN...); accounts.views
# .admin_login answers /admin/login/ when there is no password sign-in at all.
admin.site.login_form = AdminLoginForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "prefix"]
    # Tokens are made by their owners on the API tokens page; here they can only be revoked.
    readonly_fields = ["user", "name", "prefix", "key_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "subject", "issuer", "created_at"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject"]
