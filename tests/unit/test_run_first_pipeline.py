"""deploy() whole with run-first Jobs and in dry-run mode, against fakes: the phase order, what is
applied when, and what the report says (the stack shows the same through the action container)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deployer import run_first
from deployer.errors import RolloutFailed
from deployer.kube import Applied, Planned, Rejected
from tests.unit.fake_cluster import NS
from tests.unit.test_pipeline import MANIFEST, FakeDeployCluster, Journal, World

JOB = """\
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: <IMAGE>, args: [migrate]}]
"""


class JobCluster(FakeDeployCluster):
    """Adds Jobs that end as `jobs` says ("complete" or "fail"), the reads and deletes run-first
    needs, and a dry run that answers with the document as sent."""

    def __init__(self, journal: Journal, jobs: Mapping[str, str]) -> None:
        super().__init__(journal, {})
        self.jobs = jobs

    def server_side_apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        force_conflicts: bool,
        namespace: str = "default",
        on_applied: Callable[[Applied], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[Applied]:
        jobs = [d for d in docs if d["kind"] == "Job"]
        done = super().server_side_apply(
            [d for d in docs if d["kind"] != "Job"],
            force_conflicts=force_conflicts,
            on_applied=on_applied,
        )
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                stored = copy.deepcopy(dict(doc))
                stored["metadata"]["namespace"] = NS
                self.put(stored)
        for doc in jobs:
            name = str(doc["metadata"]["name"])
            self.journal.append(f"cluster apply Job/{name}")
            base = doc["metadata"]["labels"][run_first.BASE_NAME_LABEL]
            ok = self.jobs.get(base) != "fail"
            obj = copy.deepcopy(dict(doc))
            obj["metadata"].update(namespace=NS, uid=f"uid-{name}", generation=1)
            condition = {"type": "Complete" if ok else "Failed", "status": "True"}
            if not ok:
                condition.update(reason="BackoffLimitExceeded", message="limit reached")
            obj["status"] = {"conditions": [condition], "succeeded" if ok else "failed": 1}
            self.put(obj)
            item = Applied("Job", name, NS, 1, f"uid-{name}")
            done.append(item)
            if on_applied is not None:
                on_applied(item)
        return done

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None:
        self.journal.append(f"cluster get {kind}/{name}")
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if (k, ns) == (kind, namespace)
        ]

    def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        *,
        propagation: str = "Background",
        wait_s: float = 0.0,
    ) -> None:
        self.journal.append(f"cluster delete {kind}/{name} ({propagation})")
        self.delete(kind, name)

    def preview(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        force_conflicts: bool,
        namespace: str = "default",
        tolerate: Callable[[Rejected], bool] | None = None,
    ) -> list[Planned]:
        out = []
        for doc in docs:
            key = (str(doc["kind"]), NS, str(doc["metadata"]["name"]))
            self.journal.append(f"cluster dry-run {key[0]}/{key[2]}")
            out.append(Planned(copy.deepcopy(self.objects.get(key)), copy.deepcopy(dict(doc))))
        return out


def world(tmp_path: Path, jobs: Mapping[str, str], **settings: Any) -> World:
    w = World(tmp_path, run_first=("migrate",), **settings)
    (tmp_path / "deploy" / "deployment.yaml").write_text(MANIFEST + JOB)
    w.cluster = JobCluster(w.journal, jobs)
    return w


def applied(w: World) -> list[str]:
    return [c.removeprefix("cluster apply ") for c in w.journal if c.startswith("cluster apply")]


def test_the_migration_completes_before_any_other_workload_is_applied(tmp_path: Path) -> None:
    w = world(tmp_path, {"migrate": "complete"})
    outcome = w.deploy()
    assert outcome.error is None, w.log.getvalue()
    [job] = [a for a in applied(w) if a.startswith("Job/")]
    assert job.startswith("Job/migrate-00000000-")
    assert applied(w) == ["ConfigMap/app-config", job, "Deployment/web"]
    assert w.groups[-4:] == ["Render", "Run first", "Apply", "Watch"]
    assert [(r.kind, r.result) for r in outcome.results] == [
        ("Job", "succeeded"),
        ("Deployment", "succeeded"),
    ]


def test_a_failed_migration_applies_nothing_else_and_the_report_says_so(tmp_path: Path) -> None:
    w = world(tmp_path, {"migrate": "fail"})
    outcome = w.deploy()
    assert isinstance(outcome.error, RolloutFailed)
    assert "Deployment/web" not in applied(w)
    assert "nothing else was applied" in str(outcome.error)
    assert [(r.kind, r.result) for r in outcome.results] == [("Job", "failed")]
    # The ConfigMap this first deploy created goes again: what ran before had none.
    assert w.groups[-3:] == ["Run first", "Diagnosis", "Restore config"]
    assert "cluster delete ConfigMap/app-config (Background)" in w.journal
    log = w.log.getvalue()
    assert "failed: BackoffLimitExceeded (limit reached)" in log
    assert "State: applied 2 object(s): configmap/app-config, job/migrate-" in log
    assert "Rolled back: configmap/app-config (deleted)." in log


def test_a_failed_migration_leaves_the_previous_config_in_force(tmp_path: Path) -> None:
    w = world(tmp_path, {"migrate": "fail"})
    before = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": NS},
        "data": {"MODE": "before", "OLD_ONLY": "1"},
    }
    w.cluster.put(before)
    outcome = w.deploy()
    assert isinstance(outcome.error, RolloutFailed)
    # Applied with the new data before the Job ran, then put back as it was.
    assert applied(w)[0] == "ConfigMap/app-config"
    assert applied(w)[-1] == "ConfigMap/app-config"
    assert w.cluster.objects["ConfigMap", NS, "app-config"]["data"] == before["data"]
    log = w.log.getvalue()
    assert "::group::Restore config: the run-first Jobs failed" in log
    assert "configmap/app-config: restored to what it was before this deploy" in log
    assert "Rolled back: configmap/app-config (restored)." in log
    assert "### Rollback" in w.summary


def test_a_failed_migration_that_changed_no_config_restores_nothing(tmp_path: Path) -> None:
    w = world(tmp_path, {"migrate": "fail"})
    same = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": NS},
        "data": {"MODE": "prod"},
    }
    w.cluster.put(same)
    w.deploy()
    assert applied(w).count("ConfigMap/app-config") == 1
    assert "Rolled back" not in w.log.getvalue()


def test_a_migration_that_completed_at_this_commit_is_skipped_unless_asked(
    tmp_path: Path,
) -> None:
    w = world(tmp_path, {"migrate": "complete"})
    assert w.deploy().error is None
    w.journal.clear()
    outcome = w.deploy()
    assert outcome.error is None
    assert not any(a.startswith("Job/") for a in applied(w))
    assert "already completed at this commit: skipped" in w.log.getvalue()
    # Not rolled out by this deploy, so not reported as a rollout that succeeded (it was once
    # reported `succeeded` in 0.0s, as if it had run again).
    assert [r.kind for r in outcome.results] == ["Deployment"]

    w.journal.clear()
    w.settings = dataclasses.replace(w.settings, rerun_first=True)
    assert w.deploy().error is None
    assert any(c.startswith("cluster delete Job/migrate-") and "Foreground" in c for c in w.journal)
    assert any(a.startswith("Job/migrate-") for a in applied(w))


def test_a_dry_run_builds_nothing_applies_nothing_and_shows_the_diff(tmp_path: Path) -> None:
    w = world(tmp_path, {"migrate": "complete"})
    assert w.deploy().error is None
    w.journal.clear()
    (tmp_path / "deploy" / "deployment.yaml").write_text(
        (MANIFEST + JOB).replace("MODE: prod", "MODE: staging")
    )
    preview = w
    preview.settings = dataclasses.replace(w.settings, dry_run=True)
    outcome = preview.deploy()
    assert outcome.error is None, preview.log.getvalue()
    assert not any(
        c.startswith(("docker build", "docker push", "cluster apply")) for c in preview.journal
    )
    assert any(c == "cluster dry-run ConfigMap/app-config" for c in preview.journal)
    assert preview.groups[-2:] == ["Preview", "Preview"]
    log = preview.log.getvalue()
    assert '  ~ data.MODE: "prod" → "staging"' in log
    assert "State: dry run: nothing was applied to the cluster" in log
    assert "### Preview (dry run: nothing was changed)" in preview.summary
    assert '~ data.MODE: "prod" → "staging"' in preview.summary


WARM_CACHE = """\
---
apiVersion: batch/v1
kind: Job
metadata:
  name: warm-cache
  annotations: {django-k8s-deploy/run-after: "true"}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: warm, image: <IMAGE>, args: [warm_cache]}]
"""


def after_world(tmp_path: Path, jobs: Mapping[str, str], **settings: Any) -> World:
    w = world(tmp_path, jobs, **settings)
    (tmp_path / "deploy" / "deployment.yaml").write_text(MANIFEST + JOB + WARM_CACHE)
    return w


def test_a_run_after_job_runs_once_every_rollout_is_green_in_its_own_group(tmp_path: Path) -> None:
    w = after_world(tmp_path, {})
    outcome = w.deploy()
    assert outcome.error is None, w.log.getvalue()
    assert w.groups[-4:] == ["Run first", "Apply", "Watch", "Run after"]
    applies = [c for c in w.journal if c.startswith("cluster apply")]
    assert applies[-1].startswith("cluster apply Job/warm-cache-")  # last: after the rollouts
    assert [r.kind for r in outcome.results] == ["Job", "Deployment", "Job"]
    assert "runs after every rollout is green: job/warm-cache" in w.log.getvalue()


def test_a_failed_run_after_job_fails_the_deploy_and_says_the_release_is_live(
    tmp_path: Path,
) -> None:
    w = after_world(tmp_path, {"warm-cache": "fail"})
    error = w.deploy().error
    assert isinstance(error, RolloutFailed)
    assert "the release itself is live" in str(error)
    assert w.groups[-2:] == ["Run after", "Diagnosis"]


def test_a_job_marked_to_run_first_and_after_is_refused_at_its_line(tmp_path: Path) -> None:
    w = after_world(tmp_path, {})
    w.settings = dataclasses.replace(w.settings, run_first=("migrate", "warm-cache"))
    error = w.deploy().error
    assert error is not None and "run both first and after" in str(error)
    assert error.file == "deploy/deployment.yaml" and error.line is not None  # type: ignore[attr-defined]
    assert not [c for c in w.journal if c.startswith("docker build")]  # before anything slow


def planned_job(deadline: object) -> run_first.RunFirstJob:
    spec: dict[str, Any] = {"template": {}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"}, "spec": spec}
    from deployer.manifests import Document

    return run_first.RunFirstJob("m", "m-1", NS, Document(path=Path("x"), line=1, body=body))


def test_the_run_first_budget_is_the_input_else_the_jobs_deadlines_else_the_timeout() -> None:
    assert run_first.time_allowed([planned_job(3600)], 120.0, 600.0) == 120.0
    assert run_first.time_allowed([planned_job(3600)], None, 600.0) == 3630.0
    assert run_first.time_allowed([planned_job(60)], None, 600.0) == 90.0
    assert run_first.time_allowed([planned_job(None)], None, 600.0) == 600.0
    assert run_first.time_allowed([planned_job(60), planned_job(None)], None, 600.0) == 600.0
    assert run_first.time_allowed([planned_job("1h")], None, 600.0) == 600.0  # not a number
