from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    verbose_name = "Batch jobs test models"
    default_auto_field = "django.db.models.BigAutoField"
