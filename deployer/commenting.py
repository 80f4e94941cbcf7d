"""The dry run's preview on the pull request (`github-token` with `dry-run` on a pull_request
event): one comment, found again by its hidden marker and updated in place by later runs, so a
pull request carries the preview of its latest commit, or says that the latest preview failed.

The comment is written from the run's outcome after the preview (or after what stopped it), with
every secret the run knows redacted first, exactly as in the job summary, then fitted to GitHub's
size limit (`report.preview_comment`). A fork's pull request (or Dependabot's) gets a read-only
token: GitHub refuses the write, and that is one notice, not a failure.
"""

from __future__ import annotations

from deployer import report
from deployer.errors import Cancelled, DeployError, ReadOnlyToken
from deployer.run import Run
from deployer.settings import Settings


def target_of(settings: Settings) -> str:
    """What the preview is of, from the inputs alone (known before anything ran, the same on
    every run): the cluster (or `kubeconfig`) and the namespace input, when given."""
    cluster = settings.cluster or "kubeconfig"
    return f"{cluster}/{settings.namespace}" if settings.namespace else cluster


def comment_preview(run: Run) -> None:
    """Post or update the preview comment. A failure to do so becomes the run's error when
    nothing else failed (a preview asked for on the pull request and not there is no success),
    else a warning beside the first error."""
    settings, reporter, outcome = run.settings, run.reporter, run.outcome
    pr = settings.pr_comment
    if pr is None:
        return
    if isinstance(outcome.error, Cancelled) or run.interrupt.event.is_set():
        # The runner allows seconds after a cancel; a cancelled run has no preview to show.
        reporter.line("cancelled: the preview comment on the pull request was left as it was")
        return
    target = target_of(settings)
    body = report.preview_comment(
        target=reporter.redact(target),
        image_ref=reporter.redact(outcome.image_ref or settings.image_ref),
        preview=[reporter.redact(line) for line in outcome.preview],
        error=reporter.redact(str(outcome.error)) if outcome.error else "",
        run_url=settings.run_url,
    )
    marker = report.comment_marker(target)
    with reporter.group(f"Preview comment on pull request #{pr.number}"):
        try:
            api = run.services.github(pr.token, pr.api_url)
            try:
                mine = next(
                    (
                        c
                        for c in api.comments(pr.repository, pr.number)
                        if c.body.startswith(marker)
                    ),
                    None,
                )
                updated = api.update_comment(pr.repository, mine.id, body) if mine else None
                if updated is not None:
                    reporter.line(
                        f"updated the preview on pull request #{pr.number}: {updated.html_url}"
                    )
                else:  # none yet, or deleted since it was listed
                    posted = api.create_comment(pr.repository, pr.number, body)
                    reporter.line(
                        f"posted the preview on pull request #{pr.number}: {posted.html_url}"
                    )
            finally:
                api.close()
        except ReadOnlyToken as refused:
            if pr.read_only:
                reporter.notice(
                    f"pull request #{pr.number} comes from a fork (or Dependabot), whose token "
                    "GitHub makes read-only: the preview is in the job summary, not on the pull "
                    "request",
                    title="Preview not posted",
                )
                return
            _failed(run, refused)
        except DeployError as error:
            _failed(run, error)


def _failed(run: Run, error: DeployError) -> None:
    if run.outcome.error is None:
        run.outcome.error = error
    else:
        run.reporter.warning(
            f"the preview comment was not posted: {error}", title="Preview not posted"
        )
