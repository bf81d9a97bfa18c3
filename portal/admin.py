from django.contrib import admin

from .models import ClientUser


@admin.register(ClientUser)
class ClientUserAdmin(admin.ModelAdmin):
    list_display = ("user", "client", "role", "created_at")
    list_filter = ("client", "role")
    list_select_related = ("user", "client")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user", "client")
