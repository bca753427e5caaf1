"""The admin: calls and what hangs off them, and users' sign-in."""

from . import calls, users  # noqa: F401  (each registers its models)
