from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .forms import PostForm
from .models import Post
from .tasks import count_words

PAGE_SIZE = 50


def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PostForm(request.POST)
        if form.is_valid():
            post = form.save()
            # Queued once the post is committed, so the worker never looks for a row not yet there.
            transaction.on_commit(lambda: count_words.delay(post.pk))
            # Redirect after POST so a reload does not post twice.
            return redirect("index")
    else:
        form = PostForm()
    posts = Post.objects.all()[:PAGE_SIZE]
    return render(request, "board/index.html", {"form": form, "posts": posts})
