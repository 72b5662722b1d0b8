from django.apps import AppConfig


class ScimConfig(AppConfig):
    name = "scim"
    label = "scim_api"
    verbose_name = "SCIM"
