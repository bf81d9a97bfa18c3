from django.contrib.auth import get_user_model
from django.db import transaction

from adminops.services import action_record
from zartsalgo.errors import ApplicationError

from .models import ClientUser


@transaction.atomic
def client_user_create(
    *, client, email: str, password: str, actor, name: str = "", role: str = ClientUser.Role.VIEWER
) -> ClientUser:
    User = get_user_model()
    email = email.strip().casefold()
    if User.objects.filter(username=email).exists():
        raise ApplicationError(f"A login named {email} already exists.", {"email": email})
    first, _, last = name.strip().partition(" ")
    # Never staff: the admin is closed to portal users by construction.
    user = User.objects.create_user(
        username=email, email=email, password=password, first_name=first, last_name=last, is_staff=False
    )
    link = ClientUser.objects.create(user=user, client=client, role=role)
    action_record(
        verb="portal.user_create", actor=actor, client=client, target=link, summary=f"Portal login {email} created"
    )
    return link
