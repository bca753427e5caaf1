"""Users who exist when permissions per action arrive keep what they could do.

Before, every signed-in user saw and played every call, staff listened in
and paused, and staff who could change calls placed legal holds. Users
made from now on get nothing until an admin gives them a line or a
permission (least privilege).
"""

from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations

EVERYONE = ["view_all_calls", "play_recording"]
STAFF = ["listen_live", "pause_recording"]


def keep_access(apps, schema_editor):
    app_config = apps.get_app_config("recordings_app")
    app_config.models_module = True  # so that its permissions are made now
    create_permissions(app_config, apps=apps, verbosity=0)
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    perms = {
        p.codename: p
        for p in Permission.objects.filter(content_type__app_label="recordings_app")
    }
    for user in User.objects.filter(is_active=True, is_superuser=False):
        granted = [perms[name] for name in EVERYONE]
        if user.is_staff:
            granted += [perms[name] for name in STAFF]
            may_change = user.user_permissions.filter(codename="change_call").exists()
            in_group = Permission.objects.filter(
                codename="change_call", group__user=user
            ).exists()
            if may_change or in_group:
                granted.append(perms["set_legal_hold"])
        user.user_permissions.add(*granted)


class Migration(migrations.Migration):
    dependencies = [
        ("recordings_app", "0009_lines_and_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(keep_access, migrations.RunPython.noop)]
