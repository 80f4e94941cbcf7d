"""Render, dry run, apply and preview: the rendered manifests through the API server's
validation and admission (alongside the build, and again at apply only for a body that changed
since or that an admission webhook refused before the push), then server-side apply. A refusal
is the user's error at the file:line of the document refused."""

from __future__ import annotations

from typing import Any

from deployer import manifests
from deployer import preview as previewing
from deployer.errors import InputError
from deployer.github import Reporter
from deployer.kube import FIELD_MANAGER, Applied, Rejected
from deployer.plan import Plan, Rendered
from deployer.run import Run
from deployer.services import ClusterApi
from deployer.settings import Settings


def render(run: Run, plan: Plan) -> Rendered:
    """The documents to apply: those the dry run alongside the build rendered (and the API server
    accepted), unless the reference changed since (pin-digest), then rendered anew."""
    with run.phase("render", "Render: manifests"):
        rendered = plan.rendered(run.settings, run.outcome.image_ref)
        for note in rendered.notes:
            run.reporter.line(note)
        return rendered


def dry_run(run: Run, cluster: ClusterApi, plan: Plan) -> None:
    """The rendered manifests, with the reference about to be pushed, through the API server's
    validation and admission (`dryRun=All`, nothing stored): what apply would be refused is found
    while the image still builds. The render phase takes these very documents, and apply
    dry-runs again only those that changed since (with pin-digest: the image)."""
    settings, reporter = run.settings, run.reporter
    with reporter.group("Dry run: the rendered manifests, server-side"):
        documents = plan.rendered(settings, settings.image_ref).documents
        bodies = [d.body for d in documents]
        refused: set[int] = set()
        checked, start = 0, 0
        while True:
            try:
                skip = frozenset(range(start))
                checked += cluster.dry_run(bodies, field_manager=FIELD_MANAGER, skip=skip)
                break
            except Rejected as rejected:
                if not _may_be_the_unpushed_image(rejected, documents, settings.image_ref):
                    raise _located(rejected, settings, plan) from rejected
                _left_to_after_the_push(rejected, settings, reporter, plan)
                refused.add(rejected.index)
                start = rejected.index + 1  # the objects after it are still checked now
                if start >= len(bodies):
                    break
        plan.renders.accepted([b for i, b in enumerate(bodies) if i not in refused])
        if refused:
            reporter.line(
                f"the API server accepts {len(bodies) - len(refused)} of {len(bodies)} object(s); "
                f"{len(refused)} left to the dry run after the push"
            )
        else:
            reporter.line(f"the API server accepts {checked} of {len(bodies)} object(s)")


def _may_be_the_unpushed_image(
    rejected: Rejected, documents: list[manifests.Document], image_ref: str
) -> bool:
    """Could the refusal be about an image not in the registry yet? Only an admission webhook
    can look at a registry (the API server's own checks cannot), and only for an object one of
    whose containers runs `image_ref`."""
    document = documents[rejected.index]
    return bool(rejected.webhook) and any(
        image == image_ref for _, _, image in manifests.images([document])
    )


def _left_to_after_the_push(
    rejected: Rejected, settings: Settings, reporter: Reporter, plan: Plan
) -> None:
    """An admission webhook refused an object while its image is not pushed yet: a webhook may
    look at the registry (verify a signature, resolve the tag to a digest, require the image),
    so this is no verdict yet. The apply phase dry-runs the object again after the push, before
    anything is applied, and a refusal then fails the deploy as any refusal does."""
    what = f"{rejected.subject}"
    plan.renders.after_push.append(what)
    located = _located(rejected, settings, plan)
    reporter.warning(
        f'{what}: admission webhook "{rejected.webhook}" refused the dry run before the image '
        "was pushed; it is checked again after the push, before anything is applied "
        f"({rejected.message})",
        title="Dry run after the push",
        file=located.file or "",
        line=located.line,
    )


def _not_previewed(rejected: Rejected, settings: Settings, reporter: Reporter, plan: Plan) -> None:
    """A webhook refused, in a preview, an object that runs the image: a preview pushes nothing,
    so that may be the unpushed tag (a deploy dry-runs it again after the push) or the manifest.
    Said as a warning, with the webhook's reason; the other objects are previewed."""
    what = f"{rejected.subject}"
    located = _located(rejected, settings, plan)
    reporter.warning(
        f'{what}: admission webhook "{rejected.webhook}" refused the preview\'s dry run. A '
        "preview pushes nothing, so the webhook may be refusing the image that is not in the "
        "registry yet (a deploy checks it again after the push) or the manifest itself; "
        f"{what} is not in the preview ({rejected.message})",
        title="Not previewed",
        file=located.file or "",
        line=located.line,
    )


def check_by_dry_run(
    run: Run, cluster: ClusterApi, bodies: list[dict[str, Any]], plan: Plan
) -> None:
    """A dry run of every object first: a document the API server refuses for its content
    (`replicas: "two"`) is the user's error at its file:line, and nothing is applied yet.
    Bodies the dry run alongside the build accepted as they are are not sent again."""
    settings, reporter = run.settings, run.reporter
    done = plan.renders.already_accepted(bodies)
    if len(done) == len(bodies):
        reporter.line(
            f"dry run: the API server accepted these {len(bodies)} object(s) alongside the build"
        )
        return
    try:
        checked = cluster.dry_run(bodies, field_manager=FIELD_MANAGER, skip=done)
    except Rejected as rejected:
        raise _located(rejected, settings, plan) from rejected
    plan.renders.accepted(bodies)
    again = (
        f"{len(bodies) - len(done)} changed since the dry run alongside the build: " if done else ""
    )
    if plan.renders.after_push:
        again = f"after the push ({', '.join(plan.renders.after_push)} again): "
    reporter.line(
        f"dry run: {again}the API server accepts {checked} of {len(bodies) - len(done)} object(s)"
    )


def apply_bodies(run: Run, cluster: ClusterApi, bodies: list[dict[str, Any]]) -> list[Applied]:
    """Server-side apply `bodies` in order; each object applied is on the outcome and the log
    as soon as it is (a later refusal still reports what changed)."""
    reporter = run.reporter

    def applied(item: Applied) -> None:
        run.outcome.applied.append(item)
        reporter.line(
            f"applied {item.subject}" + (f" in {item.namespace}" if item.namespace else "")
        )

    return cluster.server_side_apply(
        bodies,
        field_manager=FIELD_MANAGER,
        force_conflicts=run.settings.force_conflicts,
        on_applied=applied,
        warn=lambda text: reporter.warning(text, title="Field conflict"),
    )


def preview(run: Run, cluster: ClusterApi, documents: list[manifests.Document], plan: Plan) -> None:
    """dry-run: ask the API server what a server-side apply of every object would make of it
    (admission and validation run, nothing is stored) and show the difference per object."""
    settings, reporter, outcome = run.settings, run.reporter, run.outcome
    bodies = [d.body for d in documents]
    with run.phase(
        "preview", f"Preview: server-side dry run of {len(bodies)} objects (nothing is changed)"
    ):
        # One dry run per object, which is also the check a deploy makes first: a refusal is
        # the user's error at its file:line, as in a real deploy. But a preview pushes nothing:
        # a webhook's refusal of an object running the image may be about the missing tag.
        unsure: list[Rejected] = []

        def about_the_unpushed_image(rejected: Rejected) -> bool:
            if _may_be_the_unpushed_image(rejected, documents, settings.image_ref):
                unsure.append(rejected)
                return True
            return False

        try:
            planned = cluster.preview(
                bodies,
                field_manager=FIELD_MANAGER,
                force_conflicts=settings.force_conflicts,
                tolerate=about_the_unpushed_image,
            )
        except Rejected as rejected:
            raise _located(rejected, settings, plan) from rejected
        for refusal in unsure:
            _not_previewed(refusal, settings, reporter, plan)
        reporter.line(f"dry run: the API server accepts {len(planned)} of {len(bodies)} object(s)")
    with reporter.group("Preview: what would change"), reporter.untrusted():
        diffs = [previewing.diff(p.live, p.planned, p.sent) for p in planned]
        pods = previewing.summary(diffs)
        lines = (["Pods:", *(f"  {line}" for line in pods), "Objects:"] if pods else []) + [
            line for d in diffs for line in d.lines()
        ]
        outcome.preview += lines
        for line in lines:
            reporter.line(line)
        changed = [d for d in diffs if d.changed]
        reporter.line(
            f"dry run: {len(changed)} of {len(diffs)} object(s) would change; nothing was applied"
        )


def _located(rejected: Rejected, settings: Settings, plan: Plan) -> InputError:
    """The dry run's refusal, at the file:line of the document it refused."""
    for d in plan.documents:
        if (d.kind, d.name) == (rejected.kind, rejected.name) and (
            rejected.namespace is None or d.namespace == rejected.namespace
        ):
            return InputError(
                rejected.message,
                file=manifests.display_path(d.path, settings.workspace),
                line=d.line,
                hint=rejected.hint,
            )
    where = "secrets" if (rejected.kind, rejected.name) == ("Secret", settings.secret_name) else ""
    return InputError(rejected.message, where=where or "manifests", hint=rejected.hint)
