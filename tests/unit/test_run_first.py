"""Migrations first, planned without a cluster: which Jobs, their per-commit names, what to do
with the one already there, what is applied before them, and which old Jobs go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deployer import manifests, run_first
from deployer.errors import InputError

SHA = "9b2d771e5a0c4f3e8d7b6a5c4d3e2f1a0b9c8d7e"
APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {DEBUG: "false"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: web, image: app}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: app, args: [migrate]}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: collectstatic
  annotations: {django-k8s-deploy/run-first: "true"}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: collectstatic, image: app}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: report}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: report, image: app}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80}]
"""


def docs(tmp_path: Path, text: str = APP) -> list[manifests.Document]:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    parsed = manifests.parse(manifests.read_sources((path,)))
    manifests.assign_namespace(parsed, "shop")
    return parsed


def test_run_first_jobs_are_those_named_in_the_input_or_annotated(tmp_path: Path) -> None:
    chosen = run_first.select(docs(tmp_path), ["migrate"])
    assert [d.name for d in chosen] == ["migrate", "collectstatic"]


def test_a_run_first_name_that_is_not_a_job_of_the_manifests_is_an_input_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as info:
        run_first.select(docs(tmp_path), ["migrate", "web"])
    assert str(info.value) == (
        "run-first: Job web is not in the manifests (they hold: collectstatic, migrate, report). "
        "Name Jobs defined in the manifests (kind: Job), e.g. migrate."
    )


@pytest.mark.parametrize(
    ("wanted", "hint"),
    [
        # The case: the example's Job is antisocial-migrate; "e.g. migrate" was refused.
        (["migrate"], "Did you mean antisocial-migrate? Name Jobs the manifests define."),
        (["antisocial-migrat"], "Did you mean antisocial-migrate?"),
        (["web"], "e.g. antisocial-migrate."),
    ],
)
def test_a_refused_run_first_name_is_answered_with_names_that_would_work(
    tmp_path: Path, wanted: list[str], hint: str
) -> None:
    text = APP.replace("metadata: {name: migrate}", "metadata: {name: antisocial-migrate}")
    assert "antisocial-migrate" in text
    with pytest.raises(InputError) as info:
        run_first.select(docs(tmp_path, text), wanted)
    assert hint in info.value.hint
    suggested = info.value.hint.split("Did you mean ")[-1].split("e.g. ")[-1]
    assert suggested.split("?")[0].rstrip(".") == "antisocial-migrate"


def test_a_ttl_on_a_run_first_job_is_refused_because_it_would_rerun_the_migration(
    tmp_path: Path,
) -> None:
    text = APP.replace("  backoffLimit: 0\n", "  backoffLimit: 0\n  ttlSecondsAfterFinished: 60\n")
    with pytest.raises(InputError) as info:
        run_first.select(docs(tmp_path, text), ["migrate"], tmp_path)
    assert "ttlSecondsAfterFinished" in str(info.value)
    assert getattr(info.value, "line", None) == 14  # where the Job document starts


def test_each_run_first_job_gets_a_per_commit_and_spec_name_and_labels(tmp_path: Path) -> None:
    documents = docs(tmp_path)
    [job] = run_first.plan(run_first.select(documents, ["migrate"])[:1], SHA)
    assert job.base == "migrate"
    assert job.name.startswith("migrate-9b2d771e-") and len(job.name) == len("migrate") + 15
    assert job.document.body["metadata"]["name"] == job.name
    assert job.document.body["metadata"]["labels"] == {
        "django-k8s-deploy/run-first": "migrate",
        "django-k8s-deploy/sha": SHA,
    }
    # the same commit and spec: the same name (the memory); another spec: another name
    [again] = run_first.plan(run_first.select(docs(tmp_path), ["migrate"])[:1], SHA)
    assert again.name == job.name
    changed = docs(tmp_path, APP.replace("args: [migrate]", "args: [migrate, --noinput]"))
    [other] = run_first.plan(run_first.select(changed, ["migrate"])[:1], SHA)
    assert other.name != job.name and other.name.startswith("migrate-9b2d771e-")


def test_a_long_job_name_is_cut_to_fit_a_label_value(tmp_path: Path) -> None:
    documents = docs(tmp_path, APP.replace("name: migrate}", "name: " + "m" * 70 + "}"))
    [job] = run_first.plan(run_first.select(documents, ["m" * 70])[:1], SHA)
    assert len(job.name) == 63
    assert len(job.document.body["metadata"]["labels"]["django-k8s-deploy/run-first"]) == 63


def test_before_the_jobs_only_what_changes_no_running_pod_is_applied(tmp_path: Path) -> None:
    documents = docs(tmp_path)
    jobs = run_first.plan(run_first.select(documents, ["migrate"]), SHA)
    before, after = run_first.split(documents, jobs)
    assert [f"{d.kind}/{d.name}" for d in before] == [
        "ConfigMap/app-config",
        "Service/web",
        f"Job/{jobs[0].name}",
        f"Job/{jobs[1].name}",
    ]
    assert [f"{d.kind}/{d.name}" for d in after] == ["Deployment/web", "Job/report"]


def job(conditions: list[dict[str, str]], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "migrate-x"}, "status": {"conditions": conditions, **status}}


@pytest.mark.parametrize(
    ("existing", "rerun", "decision"),
    [
        (None, False, "run"),
        (job([{"type": "Complete", "status": "True"}]), False, "skip"),
        (job([{"type": "Complete", "status": "True"}]), True, "rerun"),
        (
            job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
            False,
            "rerun",
        ),
        (
            job([{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]),
            False,
            "rerun",
        ),
        (job([], active=1), False, "attach"),
        (job([], active=1), True, "rerun"),
        (job([{"type": "Complete", "status": "False"}], active=1), False, "attach"),
    ],
)
def test_what_happens_to_a_job_of_the_same_commit_already_in_the_cluster(
    existing: dict[str, Any] | None, rerun: bool, decision: str
) -> None:
    assert run_first.decide(existing, rerun=rerun)[0] == decision


def test_a_skip_says_why_and_how_to_run_it_again() -> None:
    assert run_first.decide(job([{"type": "Complete", "status": "True"}]), rerun=False) == (
        "skip",
        "already completed at this commit: skipped (rerun-first: true runs it again)",
    )


def listed(name: str, base: str, created: str, active: int = 0) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {"django-k8s-deploy/run-first": base},
        },
        "status": {"active": active} if active else {},
    }


def test_old_jobs_are_cleaned_up_keeping_the_newest_per_name_and_never_a_running_one() -> None:
    jobs = [
        listed("migrate-1", "migrate", "2026-12-01T10:00:00Z"),
        listed("migrate-2", "migrate", "2026-12-02T10:00:00Z", active=1),
        listed("migrate-3", "migrate", "2026-12-03T10:00:00Z"),
        listed("migrate-4", "migrate", "2026-12-04T10:00:00Z"),
        listed("migrate-5", "migrate", "2026-12-05T10:00:00Z"),
        listed("seed-1", "seed", "2026-12-01T10:00:00Z"),
        {"metadata": {"name": "unlabelled", "creationTimestamp": "2020-01-01T00:00:00Z"}},
    ]
    assert run_first.to_clean_up(jobs) == ["migrate-1"]
    assert run_first.to_clean_up(jobs, keep=1) == ["migrate-1", "migrate-3", "migrate-4"]


def test_a_job_status_of_any_shape_decides_without_crashing() -> None:
    # Whatever the API server answers: no conditions to read means "still running".
    for status in (None, "Complete", [], {"conditions": "Complete"}, {"conditions": [1, None]}):
        assert run_first.decide({"status": status}, rerun=False)[0] == "attach"
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": 7}]}}
    assert run_first.decide(failed, rerun=False) == (
        "rerun",
        "failed before at this commit (7); running it again",
    )


def test_the_job_this_deploy_ran_is_kept_even_when_older_ones_share_its_second() -> None:
    # creationTimestamp has one-second resolution: three older Jobs made in the same second as
    # this deploy's sort after it by name ("migrate-old…" > "migrate-1a2b…"), which once deleted
    # the Job that had just run.
    second = "2026-12-04T10:00:00Z"
    jobs = [
        listed("migrate-old0", "migrate", second),
        listed("migrate-old1", "migrate", second),
        listed("migrate-old2", "migrate", second),
        listed("migrate-1a2b3c4d-5e6f7", "migrate", second),
    ]
    assert run_first.to_clean_up(jobs, current={"migrate-1a2b3c4d-5e6f7"}) == ["migrate-old0"]
    assert run_first.to_clean_up(jobs, keep=1, current={"migrate-1a2b3c4d-5e6f7"}) == [
        "migrate-old0",
        "migrate-old1",
        "migrate-old2",
    ]
