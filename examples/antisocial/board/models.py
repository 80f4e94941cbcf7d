from django.db import models


class Post(models.Model):
    author = models.CharField(max_length=40)
    text = models.CharField(max_length=280)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # Filled in by the worker (tasks.count_words) after the post is saved; None until then.
    words = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.author}: {self.text[:40]}"
