from datetime import timedelta
from unittest import mock

from django.test import TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from .models import Post
from .tasks import count_words, prune_old_posts

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

    def test_a_post_queues_its_word_count_for_the_worker_once_committed(self) -> None:
        with (
            mock.patch("board.views.count_words.delay") as delay,
            self.captureOnCommitCallbacks(execute=True),
        ):
            self.client.post(
                reverse("index"), {"author": "ada", "text": "hello there"}, secure=True
            )
            delay.assert_not_called()  # not before the commit
        post = Post.objects.get()
        delay.assert_called_once_with(post.pk)
        self.assertIsNone(post.words)

    def test_an_empty_post_is_rejected(self) -> None:
        response = self.client.post(reverse("index"), {"author": "", "text": ""}, secure=True)
        self.assertEqual(response.status_code, 200)
        self.assertFalse(Post.objects.exists())


@no_compress
class CountWordsTests(TestCase):
    def test_the_task_counts_the_words_and_the_page_shows_them(self) -> None:
        post = Post.objects.create(author="ada", text="three little words")
        self.assertNotIn(
            "words</span>", self.client.get(reverse("index"), secure=True).content.decode()
        )
        self.assertEqual(count_words(post.pk), 3)
        post.refresh_from_db()
        self.assertEqual(post.words, 3)
        page = self.client.get(reverse("index"), secure=True).content.decode()
        self.assertIn('<span class="words">3 words</span>', page)


class PruneTests(TestCase):
    @override_settings(POST_RETENTION_DAYS=7)
    def test_prune_deletes_only_posts_older_than_the_retention(self) -> None:
        old = Post.objects.create(author="ada", text="old")
        Post.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=8))
        Post.objects.create(author="ada", text="new")
        self.assertEqual(prune_old_posts(), 1)
        self.assertEqual(list(Post.objects.values_list("text", flat=True)), ["new"])
