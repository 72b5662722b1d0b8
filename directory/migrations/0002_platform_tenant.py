from django.db import migrations


def create_platform_tenant(apps, schema_editor):
    """The root host's tenant: platform operators (superusers) belong to it."""
    Tenant = apps.get_model("directory", "Tenant")
    if not Tenant.objects.filter(is_platform=True).exists():
        Tenant.objects.create(slug="platform", name="SecureLogin platform", is_platform=True)


def remove_platform_tenant(apps, schema_editor):
    apps.get_model("directory", "Tenant").objects.filter(is_platform=True).delete()


class Migration(migrations.Migration):
    dependencies = [("directory", "0001_initial")]

    operations = [migrations.RunPython(create_platform_tenant, remove_platform_tenant)]
