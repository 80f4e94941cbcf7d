from datetime import timedelta

from django.test import TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from .models import Post
from .tasks import prune_old_posts

# The image's templates are compressed offline at build time; these tests render them without a
# compressor cache so they also run from a plain checkout.
no_compress = override_settings(COMPRESS_ENABLED=False, COMPRESS_OFFLINE=False)


class HealthCheckTests(TestCase):
    def test_healthz_answers_plain_http_from_a_pod_ip_without_touching_the_database(self) -> None:
        with self.assertNumQueries(0):
            response = self.client.get("/healthz", headers={"host": "10.244.1.7:8000"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"ok\n")

    def test_other_pages_still_redirect_plain_http_to_https(self) -> None:
        response = self.client.get(reverse("index"), headers={"host": "testserver"})
        self.assertEqual(response.status_code, 301)
        self.assertTrue(response["Location"].startswith("https://"))


@no_compress
class BoardTests(TestCase):
    def test_a_post_is_saved_and_shown_newest_first(self) -> None:
        Post.objects.create(author="ada", text="first")
        response = self.client.post(
            reverse("index"), {"author": "grace", "text": "second"}, secure=True
        )
        self.assertRedirects(response, reverse("index"), fetch_redirect_response=False)
        page = self.client.get(reverse("index"), secure=True).content.decode()
        self.assertLess(page.index("second"), page.index("first"))

    def test_an_empty_post_is_rejected(self) -> None:
        response = self.client.post(reverse("index"), {"author": "", "text": ""}, secure=True)
        self.assertEqual(response.status_code, 200)
        self.assertFalse(Post.objects.exists())


class PruneTests(TestCase):
    @override_settings(POST_RETENTION_DAYS=7)
    def test_prune_deletes_only_posts_older_than_the_retention(self) -> None:
        old = Post.objects.create(author="ada", text="old")
        Post.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=8))
        Post.objects.create(author="ada", text="new")
        self.assertEqual(prune_old_posts(), 1)
        self.assertEqual(list(Post.objects.values_list("text", flat=True)), ["new"])
