import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import Post

log = logging.getLogger(__name__)


@shared_task
def count_words(post_id: int) -> int:
    """Counts a new post's words in the background; the view queues it for every post."""
    post = Post.objects.get(pk=post_id)
    post.words = len(post.text.split())
    post.save(update_fields=["words"])
    log.info("post %d by %s has %d words", post.pk, post.author, post.words)
    return post.words


@shared_task
def prune_old_posts() -> int:
    """Deletes posts older than POST_RETENTION_DAYS; beat runs it every PRUNE_EVERY_SECONDS."""
    cutoff = timezone.now() - timedelta(days=settings.POST_RETENTION_DAYS)
    deleted, _ = Post.objects.filter(created__lt=cutoff).delete()
    log.info("pruned %d posts older than %s", deleted, cutoff.isoformat())
    return deleted
