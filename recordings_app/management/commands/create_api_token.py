"""manage.py create_api_token --user NAME --scope read|write [--expires-days N]

Prints what the token may do, then the token alone on the last line (so a
script can take it with `tail -n 1`): it is never shown again.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from recordings_app.models import ApiToken
from recordings_app.services.api_tokens import api_token_create


class Command(BaseCommand):
    help = "Make an API token acting as a user; prints the token on its last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="The user it acts as.")
        parser.add_argument(
            "--scope",
            required=True,
            choices=ApiToken.Scope.values,
            help="read: list and fetch; write: also delete and legal holds.",
        )
        parser.add_argument(
            "--expires-days", type=int, help="Refused after N days (default: never)."
        )
        parser.add_argument("--name", default="", help="What it is for.")

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        try:
            user = users.get(**{users.model.USERNAME_FIELD: options["user"]})
        except users.model.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        if not user.is_active:
            raise CommandError(f"{user} is inactive: a token of theirs is refused.")
        try:
            api_token, token = api_token_create(
                user=user,
                scope=options["scope"],
                name=options["name"],
                expires_days=options["expires_days"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        expiry = (
            f"until {api_token.expires_at:%Y-%m-%d %H:%M %Z}"
            if api_token.expires_at
            else "with no expiry"
        )
        self.stderr.write(
            f"Token {api_token.prefix}… for {user}, scope {api_token.scope}, {expiry}. "
            "It acts with their permissions and lines; it is shown only now:"
        )
        self.stdout.write(token)
