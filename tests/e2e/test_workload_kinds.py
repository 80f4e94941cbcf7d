# ruff: noqa: F811 - the fixtures imported from test_deploy_action are parameters here
"""Every workload kind, migrations first and the dry-run preview: the action as the runner runs it,
against the real stack (real Job, StatefulSet and DaemonSet controllers; kwok plays the kubelet,
`deploy.test/behavior` picks what the pods do). kubectl, the reference peer, agrees on every green.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_deploy_action import (  # noqa: F401 - fixtures
    Deploy,
    built_sha,
    deploy,
    image_repo,
    kubectl,
    workspace,
)
from tests.harness.runner import ActionRun

pytestmark = [pytest.mark.stack, pytest.mark.docker]

CONFIG = textwrap.dedent("""\
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: app-config
    data:
      DEBUG: "false"
    """)


def pod_template(name: str, annotations: dict[str, str], *, restart: str = "") -> str:
    ann = "".join(f'        {k}: "{v}"\n' for k, v in annotations.items())
    return (
        f"    metadata:\n      labels: {{app: {name}}}\n"
        + (f"      annotations:\n{ann}" if ann else "")
        + "    spec:\n"
        + (f"      restartPolicy: {restart}\n" if restart else "")
        + f"      containers:\n        - name: {name}\n          image: <IMAGE>\n"
        "          envFrom:\n            - configMapRef: {name: app-config}\n"
    )


def deployment(name: str, annotations: dict[str, str] | None = None) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n"
        f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n"
        + pod_template(name, annotations or {})
    )


def statefulset(name: str, annotations: dict[str, str] | None = None, strategy: str = "") -> str:
    update = f"  updateStrategy: {{type: {strategy}}}\n" if strategy else ""
    return (
        f"apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n"
        f"  serviceName: {name}\n{update}  selector:\n    matchLabels: {{app: {name}}}\n"
        "  template:\n" + pod_template(name, annotations or {})
    )


def daemonset(name: str) -> str:
    return (
        f"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n"
        f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n" + pod_template(name, {})
    )


def job(name: str, behavior: str, *, run_first: bool = False, duration: str = "1s") -> str:
    marked = '  annotations: {django-k8s-deploy/run-first: "true"}\n' if run_first else ""
    return (
        f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n{marked}spec:\n"
        "  backoffLimit: 0\n  template:\n"
        + pod_template(
            name,
            {"deploy.test/behavior": behavior, "deploy.test/duration": duration},
            restart="Never",
        )
    )


CRONJOB = textwrap.dedent("""\
    apiVersion: batch/v1
    kind: CronJob
    metadata:
      name: nightly
    spec:
      schedule: "0 3 * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
                - name: nightly
                  image: <IMAGE>
    """)


def manifests(*docs: str) -> str:
    return "---\n".join([CONFIG, *docs])


def results(result: ActionRun) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['name']}": d for d in json.loads(result.outputs["deployments"])}


def get(stack: dict[str, str], namespace: str, what: str, jsonpath: str) -> str:
    out = kubectl(stack, "-n", namespace, "get", what, "-o", f"jsonpath={jsonpath}")
    assert out.returncode == 0, out.stderr
    return out.stdout


# -- every kind ---------------------------------------------------------------------------------


def test_every_kind_is_waited_for_with_kubectls_meaning_of_done_and_kubectl_agrees(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    result = deploy(
        manifests(
            deployment("web"),
            statefulset("db"),
            statefulset("cache", strategy="OnDelete"),
            daemonset("logs"),
            job("seed", "complete"),
            CRONJOB,
        )
    )
    assert result.exit_code == 0, result.log[-4000:]
    assert result.outputs["result"] == "succeeded"
    found = results(result)
    assert set(found) == {
        "Deployment/web",
        "StatefulSet/db",
        "StatefulSet/cache",
        "DaemonSet/logs",
        "Job/seed",
    }, "every waited kind is in outputs.deployments, with its kind; the CronJob is not"
    assert {k: d["result"] for k, d in found.items()} == dict.fromkeys(found, "succeeded")
    assert found["StatefulSet/cache"]["reason"].startswith(
        "applied, not waited for: rollout status is only available for RollingUpdate"
    )
    assert found["Job/seed"]["reason"] == "complete (1 of 1 succeeded)"
    for what in ("deployment/web", "statefulset/db", "daemonset/logs"):
        peer = kubectl(stack, "-n", namespace, "rollout", "status", what, "--timeout=5s")
        assert peer.returncode == 0, (what, peer.stderr)
    peer = kubectl(
        stack, "-n", namespace, "wait", "--for=condition=complete", "job/seed", "--timeout=5s"
    )
    assert peer.returncode == 0, peer.stderr
    # kubectl refuses to wait for OnDelete, as we report
    refused = kubectl(stack, "-n", namespace, "rollout", "status", "statefulset/cache")
    assert refused.returncode != 0
    assert "only available for RollingUpdate strategy type" in refused.stderr
    assert get(stack, namespace, "cronjob/nightly", "{.metadata.name}") == "nightly"


def test_a_crash_looping_statefulset_and_a_failing_job_are_red_fast_with_pod_and_exit_code(
    deploy: Deploy,
) -> None:
    result = deploy(
        manifests(
            statefulset("db", {"deploy.test/behavior": "crash-loop"}),
            job("seed", "fail-exit-3"),
        ),
        **{"wait-for": "statefulset/db\njob/seed"},
    )
    assert result.exit_code == 1, result.log[-4000:]
    found = results(result)
    assert found["StatefulSet/db"]["result"] == "failed"
    assert (
        "container `db` is crash-looping: last run exited 1 (Error)"
        in (found["StatefulSet/db"]["reason"])
    )
    # kwok's crash loop is Ready for a moment at each start, as a kubelet's is without a probe:
    # the controller may create db-1 in such a moment, and then both crash-loop.
    named = re.search(r"\[pod (db-[01])\]", found["StatefulSet/db"]["reason"])
    assert named, found["StatefulSet/db"]["reason"]
    assert found["Job/seed"]["result"] == "failed"
    assert found["Job/seed"]["reason"].startswith("failed: BackoffLimitExceeded")
    assert "container `seed` exited 3 (Error)" in found["Job/seed"]["reason"]
    assert "::group::Diagnosis: job/seed" in result.log
    # The diagnosis finds the same pod by the watcher's rule (the update revision's label).
    assert "::group::Diagnosis: statefulset/db" in result.log
    # Seen between restarts (terminated, as a kubelet keeps it) or in its short waiting window.
    assert (
        f"pod {named.group(1)}, container `db`: Error" in result.log
        or f"pod {named.group(1)}, container `db`: CrashLoopBackOff" in result.log
    )


def test_wait_for_names_kinds_and_a_missing_one_is_refused_before_the_build(
    deploy: Deploy,
) -> None:
    result = deploy(manifests(deployment("web")), **{"wait-for": "statefulset/web"})
    assert result.exit_code == 2
    assert "statefulset/web is not in the manifests (they hold: deployment/web)" in result.log
    assert "::group::Build" not in result.log


# -- migrations first ---------------------------------------------------------------------------


def test_a_failed_migration_rolls_nothing_else_and_says_so(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    first = deploy(
        manifests(job("migrate", "complete"), deployment("web")), **{"run-first": "migrate"}
    )
    assert first.exit_code == 0, first.log[-4000:]
    [migrated] = [d for k, d in results(first).items() if k.startswith("Job/migrate-")]
    assert migrated["result"] == "succeeded"
    assert results(first)["Deployment/web"]["result"] == "succeeded"
    log = first.log
    assert log.index("::group::Run first") < log.index("applied deployment/web")
    generation = get(stack, namespace, "deployment/web", "{.metadata.generation}")

    failed = deploy(
        manifests(
            job("migrate", "fail-exit-2", run_first=True),
            deployment("web", {"release": "two"}),
        ),
        **{"run-first": "migrate"},
    )
    assert failed.exit_code == 1, failed.log[-4000:]
    assert failed.outputs["result"] == "failed"
    migrate = next(d for k, d in results(failed).items() if k.startswith("Job/migrate"))
    assert migrate["result"] == "failed"
    assert "container `migrate` exited 2 (Error)" in migrate["reason"]
    assert "Deployment/web" not in results(failed), "web was never applied, so never watched"
    assert "nothing else was applied" in failed.log
    assert "applied deployment/web" not in failed.log
    assert get(stack, namespace, "deployment/web", "{.metadata.generation}") == generation


def test_run_after_jobs_run_once_the_rollouts_are_green_and_their_failure_says_the_release_is_live(
    deploy: Deploy,
) -> None:
    after = '  annotations: {django-k8s-deploy/run-after: "true"}\n'
    warm = job("warm", "complete").replace("  name: warm\n", "  name: warm\n" + after)
    green = deploy(manifests(deployment("web"), warm))
    assert green.exit_code == 0, green.log[-4000:]
    log = green.log
    assert log.index("deployment/web: succeeded") < log.index("::group::Run after")
    [ran] = [d for k, d in results(green).items() if k.startswith("Job/warm-")]
    assert ran["result"] == "succeeded"

    broken = job("warm", "fail-exit-2").replace("  name: warm\n", "  name: warm\n" + after)
    red = deploy(manifests(deployment("web", {"release": "two"}), broken))
    assert red.exit_code == 1, red.log[-4000:]
    assert results(red)["Deployment/web"]["result"] == "succeeded"
    assert "the release itself is live" in red.log
    assert "container `warm` exited 2 (Error)" in red.log


def test_a_migration_runs_once_per_commit_unless_asked_and_old_jobs_are_cleaned_up(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    text = manifests(job("migrate", "complete"), deployment("web"))
    # three older migrate Jobs, as earlier commits left them
    for i in range(3):
        old = job(f"migrate-old{i}", "complete").replace(
            "metadata:\n  name:",
            "metadata:\n  labels: {django-k8s-deploy/run-first: migrate}\n  name:",
            1,
        )
        applied = subprocess_apply(stack, namespace, old.replace("<IMAGE>", "example.invalid/x:1"))
        assert applied.returncode == 0, applied.stderr

    first = deploy(text, **{"run-first": "migrate"})
    assert first.exit_code == 0, first.log[-4000:]
    [job_name] = [k.split("/", 1)[1] for k in results(first) if k.startswith("Job/")]
    assert job_name.startswith("migrate-")
    uid = get(stack, namespace, f"job/{job_name}", "{.metadata.uid}")
    names = get(stack, namespace, "jobs", "{.items[*].metadata.name}").split()
    assert "migrate-old0" not in names, first.log[-3000:]  # the oldest of four is cleaned up
    assert {"migrate-old1", "migrate-old2", job_name} <= set(names)

    again = deploy(text, **{"run-first": "migrate"})
    assert again.exit_code == 0, again.log[-4000:]
    assert f"job/{job_name}: already completed at this commit: skipped" in again.log
    assert get(stack, namespace, f"job/{job_name}", "{.metadata.uid}") == uid

    asked = deploy(text, **{"run-first": "migrate", "rerun-first": "true"})
    assert asked.exit_code == 0, asked.log[-4000:]
    assert results(asked)[f"Job/{job_name}"]["result"] == "succeeded"
    assert get(stack, namespace, f"job/{job_name}", "{.metadata.uid}") != uid

    # a new commit: a new Job beside the old one (its template is immutable), which stays
    newer_sha = "e" * 40
    newer = deploy(text, sha=newer_sha, **{"run-first": "migrate"})
    assert newer.exit_code == 0, newer.log[-4000:]
    [newer_job] = [k.split("/", 1)[1] for k in results(newer) if k.startswith("Job/")]
    assert newer_job.startswith("migrate-eeeeeeee-")
    assert results(newer)[f"Job/{newer_job}"]["result"] == "succeeded"
    names = get(stack, namespace, "jobs", "{.items[*].metadata.name}").split()
    assert sorted(names) == sorted(["migrate-old2", job_name, newer_job]), names


def subprocess_apply(
    stack: dict[str, str], namespace: str, text: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- dry run ------------------------------------------------------------------------------------


def resource_versions(stack: dict[str, str], namespace: str) -> dict[str, str]:
    out = get(
        stack,
        namespace,
        "deployments,statefulsets,jobs,configmaps,secrets,services",
        "{range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
    )
    return dict(item.split("=") for item in out.split())


def test_a_dry_run_changes_nothing_and_its_diff_names_the_changed_fields_but_no_secret(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    text = manifests(deployment("web"), statefulset("db"))
    green = deploy(text, secrets="SECRET_KEY=first-value-123\n", **{"secret-name": "app-secrets"})
    assert green.exit_code == 0, green.log[-4000:]
    before = resource_versions(stack, namespace)
    changed = (
        text.replace('DEBUG: "false"', 'DEBUG: "true"').replace(
            "  replicas: 1\n", "  replicas: 3\n", 1
        )
        + "---\n"
        + job("migrate", "succeed")
    )
    preview = deploy(
        changed,
        secrets="SECRET_KEY=second-value-456\n",
        **{
            "secret-name": "app-secrets",
            "dry-run": "true",
            # a commit never built: a dry run neither builds nor needs the image
            "sha": "f" * 40,
        },
    )
    assert preview.exit_code == 0, preview.log[-4000:]
    assert resource_versions(stack, namespace) == before, "nothing stored"
    assert "::group::Build" not in preview.log and "::group::Push" not in preview.log
    log = preview.visible_log
    assert "configmap/app-config" in log and 'data.DEBUG: "false" → "true"' in log
    assert "deployment/web" in log and "spec.replicas: 1 → 3" in log
    assert "data.SECRET_KEY: (hidden) → (value changed)" in log
    assert f"{'f' * 40}"[:12] in log  # the image it would deploy
    for secret in ("second-value-456", "first-value-123"):
        assert secret not in log
        assert secret not in preview.summary
    assert "spec.replicas: 1 → 3" in preview.summary
    # What a reviewer reads first: which pods roll, and why; then the fields.
    pods = log.index("Pods:")
    assert log.index(f"deployment/web in {namespace}: pods will roll (image, config)") > pods
    assert f"statefulset/db in {namespace}: pods will roll (image, config)" in log
    assert f"job/migrate in {namespace}: new: will run" in log
    assert log.index("Objects:") > pods
    # Our stamps in one line each, never a 64-hex checksum.
    assert "config checksum (the manifests' ConfigMaps/Secrets it uses): changed" in log
    assert re.search(r"[0-9a-f]{64}", log) is None
    # The new Job as it was sent: no server defaults, its image in full.
    for default in ("completionMode", "podReplacementPolicy", "controller-uid"):
        assert default not in log
    image = f'spec.template.spec.containers[migrate].image: "{stack["DJK_REGISTRY"]}/'
    (line,) = [x for x in log.splitlines() if image in x]
    assert line.endswith(f':{"f" * 40}"') and "…" not in line


# -- the example app's two layouts --------------------------------------------------------------

EXAMPLE_DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "antisocial" / "deploy"


@pytest.mark.parametrize("layout", ["migrate-job", "init-containers"])
def test_the_example_apps_manifests_deploy_in_both_layouts(
    deploy: Deploy, stack: dict[str, str], namespace: str, layout: str
) -> None:
    files = ["configmap.yaml", "service.yaml"] + (
        ["migrate.yaml", "deployment.yaml"]
        if layout == "migrate-job"
        else ["alternative/deployment-init-containers.yaml"]
    )
    text = "\n---\n".join((EXAMPLE_DEPLOY / f).read_text() for f in files)
    result = deploy(text, **{"secret-name": "antisocial-secrets"})
    assert result.exit_code == 0, result.log[-4000:]
    found = results(result)
    web, worker, beat = (f"Deployment/antisocial-{c}" for c in ("web", "worker", "beat"))
    assert {found[k]["result"] for k in (web, worker, beat)} == {"succeeded"}
    inits = get(
        stack,
        namespace,
        "deployment/antisocial-worker",
        "{.spec.template.spec.initContainers[*].name}",
    ).split()
    if layout == "init-containers":
        assert inits == ["migrate", "collectstatic", "compress"]
        assert not [k for k in found if k.startswith("Job/")]
        return
    assert inits == [], "no pod runs a migration in the recommended layout"
    [job] = [k for k in found if k.startswith("Job/antisocial-migrate-")]
    assert found[job]["result"] == "succeeded"
    log = result.log
    assert log.index(f"{job.lower()}: succeeded") < log.index("applied deployment/antisocial-web")
    done = kubectl(
        stack, "-n", namespace, "wait", "--for=condition=complete", job.lower(), "--timeout=5s"
    )
    assert done.returncode == 0, done.stderr
