from django.db import migrations

# A tenant's first Entra cycle grows these tables from nothing to tens of thousands of rows in
# minutes. PostgreSQL's default re-analyses a table after 10% of it changed, which left the planner on
# an empty-table plan (a tenant scan per userName lookup) for most of a measured cycle
# (docs/benchmarks.md, "Statistics"). 2% keeps the statistics fresh while a tenant grows.
TABLES = ("directory_user", "directory_useremail", "directory_membership", "directory_group")


def set_thresholds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET (autovacuum_analyze_scale_factor = 0.02)")


def reset_thresholds(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET (autovacuum_analyze_scale_factor)")


class Migration(migrations.Migration):
    dependencies = [("directory", "0002_platform_tenant")]

    operations = [migrations.RunPython(set_thresholds, reset_thresholds)]
