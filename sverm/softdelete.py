"""Soft delete, one way: a `deleted_at` column and queryset methods to see the living, the dead or
both. The default manager is unfiltered so admin, relations and purges see every row; callers
choose `alive()`, `deleted()` or `with_deleted()` explicitly."""

from django.db import models


class SoftDeleteQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)

    def deleted(self):
        return self.filter(deleted_at__isnull=False)

    def with_deleted(self):
        return self.all()


class SoftDeleteModel(models.Model):
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None
