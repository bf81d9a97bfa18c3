"""Forms of the client portal."""

from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm


class PortalPasswordResetForm(PasswordResetForm):
    """Django's reset form, limited to active portal users.

    Staff (and anyone without a portal link) never get a reset email from the portal: their
    passwords are managed through the admin. The view answers the same for every address, so
    the form cannot be used to learn who has a login.
    """

    def get_users(self, email: str) -> Iterator:
        User = get_user_model()
        email_field = User.get_email_field_name()
        candidates = User._default_manager.filter(
            **{f"{email_field}__iexact": email},
            is_active=True,
            is_staff=False,
            is_superuser=False,
            client_user__isnull=False,
        )
        for user in candidates:
            if user.has_usable_password() and (getattr(user, email_field) or "").casefold() == email.casefold():
                yield user
