"""Trigram indexes for the list's search box, on PostgreSQL only.

The search matches any part of a number (LIKE '%...%'), which no B-tree
index serves: at 100,000 calls every search scanned the table (bench/
list_page.py). pg_trgm's GIN indexes serve such patterns, one per OR'ed
column, so PostgreSQL combines them (BitmapOr). The expressions are the
ones Django writes for contains / icontains / istartswith.

pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may
create it. Where it cannot be created, the search works as before, only
without these indexes, and the migration says so.
"""

import sys

from django.db import DatabaseError, migrations, transaction

INDEXES = {
    "call_from_number_trgm": '"from_number" gin_trgm_ops',
    "call_to_number_trgm": '"to_number" gin_trgm_ops',
    "call_uuid_upper_trgm": 'UPPER("uuid"::text) gin_trgm_ops',
    "call_conversation_upper_trgm": 'UPPER("conversation_uuid"::text) gin_trgm_ops',
}


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(apps.get_model("recordings_app", "Call")._meta.db_table)
    with connection.cursor() as cursor:
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as error:
            sys.stderr.write(
                f"\n  pg_trgm could not be created ({error}); the call search "
                "works, but scans the table. Ask a superuser to run "
                "CREATE EXTENSION pg_trgm, then migrate back to 0006 and forward.\n"
            )
            return
        for name, expression in INDEXES.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({expression})"
            )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("recordings_app", "0006_call_newest_first_index"),
    ]

    operations = [migrations.RunPython(create_indexes, drop_indexes)]
