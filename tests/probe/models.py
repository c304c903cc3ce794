from django.db import models


class ProbeRecord(models.Model):
    name = models.CharField(max_length=50)
    added_later = models.CharField(max_length=50, default="")
