from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Directory"

    def ready(self) -> None:
        from django.db.models import CharField, TextField
        from django.db.models.functions import Lower

        # `field__lower=value` compiles to LOWER(field) = value, the same expression the per-tenant
        # case-insensitive unique indexes are built on, so SCIM `eq` lookups on userName, emails and
        # group displayName are index scans on PostgreSQL (unlike iexact's UPPER(field::text)).
        CharField.register_lookup(Lower)
        TextField.register_lookup(Lower)
