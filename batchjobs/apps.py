from django.apps import AppConfig


class BatchJobsConfig(AppConfig):
    name = "batchjobs"
    verbose_name = "Batch jobs"
    default_auto_field = "django.db.models.BigAutoField"
