"""deployer.kube, watch.py and diagnose.py against the real local stack (apiserver, controllers,
scheduler, kwok). Real Deployments are applied with server-side apply and judged; kwok plays
each failure through the pod template annotation `deploy.test/behavior`.

The measured time from apply to verdict is printed (`pytest -s`); speed is shown by bench/,
not asserted here. A fast red is proven by its reason: Deployments keep a 600 s progress
deadline unless a test lowers it, and a watch ends "timed-out" after 60 s, so a red verdict
naming a pod's state can only come from the fail-fast rules.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.diagnose import diagnose_all
from deployer.errors import InputError
from deployer.kube import Applied, Cluster, Conflict, Forbidden
from deployer.report import diagnosis_text, verdict_line
from deployer.results import RolloutResult, Target
from deployer.watch import watch_rollouts

pytestmark = pytest.mark.stack

IMAGE = "registry.example.test/antisocial:4e1f0c2"


@pytest.fixture
def cluster(stack: dict[str, str]) -> Iterator[Cluster]:
    with Cluster.from_kubeconfig_file(stack["KUBECONFIG"]) as c:
        yield c


def deployment(
    name: str,
    namespace: str,
    *,
    behavior: str | None = None,
    replicas: int = 1,
    init: bool = False,
    cpu: str | None = None,
    image: str = IMAGE,
    progress_deadline_s: int = 600,
    ready_after: str | None = None,
) -> dict[str, Any]:
    annotations = {}
    if behavior:
        annotations["deploy.test/behavior"] = behavior
    if ready_after:
        annotations["deploy.test/ready-after"] = ready_after
    container: dict[str, Any] = {"name": "app", "image": image, "args": ["web"]}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    spec: dict[str, Any] = {"containers": [container]}
    if init:
        spec["initContainers"] = [
            {"name": "migrate", "image": image, "args": ["migrate"]},
            {"name": "collectstatic", "image": image, "args": ["collectstatic"]},
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline_s,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                # no empty annotations map: SSA would count it as a field we own
                "metadata": {
                    "labels": {"app": name},
                    **({"annotations": annotations} if annotations else {}),
                },
                "spec": spec,
            },
        },
    }


# The action holds a rollout kubectl calls done to a settle window (its `settle` input, 10 s by
# default); kwok's crash-loop pods end their runs 0.3 s after each start, so 2 s is plenty here.
# Without one, a crash-loop pod without a probe is "done" for an instant before its first crash,
# on kwok as on a real kubelet.
SETTLE_S = 2.0


def apply_and_watch(
    cluster: Cluster,
    docs: list[dict[str, Any]],
    *,
    timeout_s: float = 60,
    settle_s: float = SETTLE_S,
    **kwargs: Any,
) -> tuple[list[RolloutResult], float, list[str]]:
    """Apply, then watch every Deployment; returns results, seconds from apply to verdict, log."""
    lines: list[str] = []
    since = datetime.now(UTC)
    started = time.monotonic()
    applied = cluster.server_side_apply(docs, force_conflicts=True)
    targets = [
        Target(a.name, a.namespace or "default", a.generation)
        for a in applied
        if a.kind == "Deployment"
    ]
    results = watch_rollouts(
        cluster,
        targets,
        timeout_s=timeout_s,
        progress=lines.append,
        on_verdict=lambda r: lines.append(verdict_line(r)),
        settle_s=settle_s,
        **kwargs,
    )
    elapsed = time.monotonic() - started
    results = diagnose_all(cluster, results, since)  # the pipeline's next phase
    for r in results:
        print(f"\n[{r.name}] {r.result} {elapsed:.2f}s from apply: {r.reason}")
    return results, elapsed, lines


def kubectl(stack: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        env={**os.environ, "KUBECONFIG": stack["KUBECONFIG"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- green --------------------------------------------------------------------------------


def test_a_three_deployment_app_with_init_containers_rolls_out_green_and_kubectl_agrees(
    cluster: Cluster, namespace: str, stack: dict[str, str]
) -> None:
    docs = [
        deployment("web", namespace, replicas=2, ready_after="1s"),
        deployment("worker", namespace, init=True),
        deployment("beat", namespace),
    ]
    results, elapsed, lines = apply_and_watch(cluster, docs)
    assert [(r.name, r.result, r.reason) for r in results] == [
        ("web", "succeeded", "successfully rolled out"),
        ("worker", "succeeded", "successfully rolled out"),
        ("beat", "succeeded", "successfully rolled out"),
    ]
    assert elapsed >= 1  # web's pods were held un-ready 1 s: green came after they were Ready
    assert any(line.startswith("deployment/web: succeeded after ") for line in lines)
    for name in ("web", "worker", "beat"):
        peer = kubectl(
            stack, "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=5s"
        )
        assert peer.returncode == 0, peer.stderr
        assert "successfully rolled out" in peer.stdout


def test_a_second_apply_waits_for_its_own_generation(cluster: Cluster, namespace: str) -> None:
    results, _, _ = apply_and_watch(cluster, [deployment("web", namespace)])
    assert results[0].result == "succeeded"
    second = deployment("web", namespace, ready_after="2s", image=IMAGE + "-2")
    results, elapsed, _ = apply_and_watch(cluster, [second])
    assert results[0].result == "succeeded"
    assert elapsed >= 2  # the new pod was held un-ready 2s: the old complete status did not count
    assert (
        cluster.get_deployment("web", namespace)["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == IMAGE + "-2"
    )


# --- red, fast ----------------------------------------------------------------------------


def test_a_failing_migrate_init_container_is_red_from_its_own_exit_and_named(
    cluster: Cluster, namespace: str
) -> None:
    results, _, _ = apply_and_watch(
        cluster, [deployment("worker", namespace, behavior="init-fail", init=True)]
    )
    [worker] = results
    assert worker.result == "failed"
    assert worker.reason.startswith("init container `migrate` exited 1 (Error) [pod worker-")
    diagnosis = worker.diagnosis
    assert diagnosis is not None
    assert (diagnosis.container, diagnosis.init_container, diagnosis.exit_code) == (
        "migrate",
        True,
        1,
    )
    text = "\n".join(diagnosis_text(diagnosis))
    assert text.startswith(f"deployment/worker (namespace {namespace}): init container `migrate`")
    # no deploy.test/logs annotation, so no logs: the diagnosis says so instead of failing; the
    # init container ended, so its last run is what is asked for (by its name)
    assert "logs of `migrate`, last run" in text


def test_a_crash_loop_is_red_after_the_restart_tolerance(cluster: Cluster, namespace: str) -> None:
    results, _, _ = apply_and_watch(cluster, [deployment("web", namespace, behavior="crash-loop")])
    [web] = results
    assert web.result == "failed"
    assert "container `app` is crash-looping: last run exited 1 (Error), restarted" in web.reason
    restarts = int(web.reason.split(", restarted ", 1)[1].split(" times", 1)[0])
    assert restarts >= 2  # the default restart tolerance was given before the red
    assert web.diagnosis is not None
    # Seen between restarts (terminated, as a kubelet keeps it) or in the short waiting window.
    assert web.diagnosis.reason in ("Error", "CrashLoopBackOff")
    assert any(e.reason == "BackOff" for e in web.diagnosis.events)
    assert all(e.reason not in ("Scheduled", "SuccessfulCreate") for e in web.diagnosis.events)


def test_an_image_that_does_not_exist_is_red_at_the_first_pull(
    cluster: Cluster, namespace: str
) -> None:
    results, _, _ = apply_and_watch(
        cluster, [deployment("web", namespace, behavior="image-pull-not-found")]
    )
    [web] = results
    assert web.result == "failed"
    assert web.reason.startswith(f"container `app` cannot pull {IMAGE}: ")
    assert "not found" in web.reason  # the registry's final answer, not a back-off to wait out
    assert web.diagnosis is not None
    assert web.diagnosis.logs[0].note.startswith("no logs: the container never started")


def test_an_unschedulable_pod_is_red_after_the_grace_period(
    cluster: Cluster, namespace: str
) -> None:
    results, elapsed, _ = apply_and_watch(
        cluster, [deployment("web", namespace, cpu="4000")], unschedulable_grace_s=2
    )
    [web] = results
    assert web.result == "failed"
    # 0/2 with the stack's real node (tainted: it refuses the pod for that reason).
    assert web.reason.startswith("cannot be scheduled for 2s: 0/")
    assert " nodes are available: " in web.reason
    assert "Insufficient cpu" in web.reason
    assert elapsed >= 2  # not before the grace had passed


def test_a_never_ready_pod_ends_at_the_progress_deadline(cluster: Cluster, namespace: str) -> None:
    results, elapsed, _ = apply_and_watch(
        cluster, [deployment("web", namespace, behavior="never-ready", progress_deadline_s=3)]
    )
    [web] = results
    assert web.result == "failed"
    assert web.reason.startswith('exceeded its progress deadline of 3s: ReplicaSet "web-')
    assert elapsed >= 3  # not before the deadline had passed
    assert web.diagnosis is not None
    assert web.diagnosis.reason == "NotReady"


def test_a_never_ready_pod_times_out_with_what_it_waits_for(
    cluster: Cluster, namespace: str
) -> None:
    results, elapsed, _ = apply_and_watch(
        cluster, [deployment("web", namespace, behavior="never-ready")], timeout_s=4
    )
    [web] = results
    assert web.result == "timed-out"
    assert web.reason.startswith(
        "timed out after 4s: 0 of 1 updated replicas are available; pod web-"
    )
    assert web.reason.endswith("container `app` is running but not ready (readiness probe)")
    assert elapsed >= 4  # not before our timeout had passed


def test_one_of_two_deployments_failing_leaves_the_other_judged(
    cluster: Cluster, namespace: str
) -> None:
    results, _, _ = apply_and_watch(
        cluster,
        [
            deployment("web", namespace, replicas=2),
            deployment("worker", namespace, behavior="init-fail", init=True),
        ],
    )
    web, worker = results
    assert worker.result == "failed"
    assert worker.reason.startswith("init container `migrate` exited 1 (Error)")
    # judged, not cut off: web's green came within the failure grace (else "cancelled")
    assert web.result == "succeeded"
    assert web.reason == "successfully rolled out"


# --- apply, rollback, permissions -----------------------------------------------------------


def test_apply_reports_generation_and_a_field_conflict_names_fields_and_owners(
    cluster: Cluster, namespace: str
) -> None:
    doc = deployment("web", namespace)
    [first] = cluster.server_side_apply([doc], field_manager="other-tool", force_conflicts=False)
    assert (first.kind, first.name, first.namespace, first.generation) == (
        "Deployment",
        "web",
        namespace,
        1,
    )
    changed = deployment("web", namespace, replicas=3)
    with pytest.raises(Conflict) as info:
        cluster.server_side_apply([changed], force_conflicts=False)
    message = str(info.value)
    assert message.startswith(
        f'Deployment/web in namespace "{namespace}": server-side apply conflicts with other '
        'field managers: .spec.replicas (owned by "other-tool")'
    )
    assert "force-conflicts" in message
    assert isinstance(info.value, InputError)

    warnings: list[str] = []
    seen: list[Applied] = []
    [second] = cluster.server_side_apply(
        [changed], force_conflicts=True, warn=warnings.append, on_applied=seen.append
    )
    assert seen == [second]
    assert second.generation == 2
    assert warnings == [
        "deployment/web: taking over fields set by other managers (force-conflicts): "
        '.spec.replicas (owned by "other-tool")'
    ]


def test_rollback_returns_a_failed_deployment_to_its_previous_revision(
    cluster: Cluster, namespace: str
) -> None:
    good = deployment("web", namespace)
    results, _, _ = apply_and_watch(cluster, [good])
    assert results[0].result == "succeeded"
    bad = deployment("web", namespace, behavior="crash-loop", image=IMAGE + "-bad")
    results, _, _ = apply_and_watch(cluster, [bad])
    assert results[0].result == "failed"

    rollback = cluster.undo_rollout("web", namespace)
    assert (rollback.done, rollback.from_revision, rollback.to_revision) == (True, "2", "1")
    assert rollback.message == "deployment/web: rolled back from revision 2 to revision 1"
    after = cluster.get_deployment("web", namespace)
    assert after is not None
    template = after["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == IMAGE
    assert "pod-template-hash" not in template["metadata"]["labels"]
    results = watch_rollouts(
        cluster,
        [Target("web", namespace, after["metadata"]["generation"])],
        timeout_s=30,
        progress=lambda _: None,
    )
    assert results[0].result == "succeeded"
    again = cluster.undo_rollout("web", namespace)  # revision 3 = template of 1; previous is 2
    assert again.done


def test_rollback_without_history_changes_nothing_and_says_so(
    cluster: Cluster, namespace: str
) -> None:
    cluster.server_side_apply([deployment("web", namespace)], force_conflicts=True)
    deadline = time.monotonic() + 60  # a generous wait for the controller, not a speed check
    while (cluster.get_deployment("web", namespace) or {}).get("metadata", {}).get(
        "annotations", {}
    ).get("deployment.kubernetes.io/revision") is None:
        assert time.monotonic() < deadline, "the controller never set a revision"
        time.sleep(0.1)
    rollback = cluster.undo_rollout("web", namespace)
    assert (rollback.done, rollback.message) == (
        False,
        "deployment/web: no previous revision to roll back to",
    )


def test_a_limited_identity_gets_one_line_saying_what_to_grant(
    stack: dict[str, str], namespace: str
) -> None:
    with Cluster.from_kubeconfig_file(stack["DJK_LIMITED_KUBECONFIG"]) as limited:
        with pytest.raises(Forbidden) as info:
            limited.server_side_apply([deployment("web", namespace)], force_conflicts=True)
        message = str(info.value)
        assert message.startswith(
            f'the cluster identity may not "patch" deployments.apps in namespace "{namespace}": '
        )
        assert (
            f'Grant the identity "patch" on deployments.apps in namespace "{namespace}"' in message
        )
        assert "\n" not in message
        # whichever of the three watches asks first is refused first
        with pytest.raises(Forbidden, match=r'may not "list" (deployments|replicasets|pods) in'):
            watch_rollouts(
                limited, [Target("web", namespace, 1)], timeout_s=10, progress=lambda _: None
            )
        # its own namespace works
        applied = limited.server_side_apply(
            [deployment("own", "djk-limited")], force_conflicts=True
        )
        assert applied[0].name == "own"


def test_exists_and_server_version(cluster: Cluster, namespace: str) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": namespace},
        "data": {"A": "1"},
    }
    assert not cluster.exists("ConfigMap", "app-config", namespace)
    cluster.server_side_apply([config_map], force_conflicts=True)
    assert cluster.exists("ConfigMap", "app-config", namespace)
    assert not cluster.exists("Secret", "app-config", namespace)
    assert cluster.server_version().startswith("v1.3")
    assert cluster.default_namespace == "default"


def test_an_unknown_kind_is_refused_before_anything_is_sent(
    cluster: Cluster, namespace: str
) -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(
        InputError, match=r"does not serve kind Widget in apiVersion example\.com/v1"
    ):
        cluster.server_side_apply([doc], force_conflicts=True, namespace=namespace)


def test_an_invalid_manifest_gets_the_api_servers_reason(cluster: Cluster, namespace: str) -> None:
    doc = deployment("web", namespace)
    doc["spec"]["template"]["spec"]["containers"][0]["name"] = "Not_A_Valid_Name"
    with pytest.raises(
        InputError, match=r"the API server rejected apply Deployment/web: .*Invalid"
    ):
        cluster.server_side_apply([doc], force_conflicts=True)


def test_a_kubeconfig_held_in_memory_leaves_no_files_behind(
    stack: dict[str, str], namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # stands in for the workspace
    kubeconfig = Path(stack["KUBECONFIG"])
    base = kubeconfig.parent  # relative paths in a kubeconfig are relative to its file
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["clusters"]:  # inline the CA, as DigitalOcean's kubeconfig has it
        info = entry["cluster"]
        if "certificate-authority" in info:
            ca = (base / info.pop("certificate-authority")).read_bytes()
            info["certificate-authority-data"] = base64.b64encode(ca).decode()
    for entry in config["users"]:
        user = entry["user"]
        for key in ("client-certificate", "client-key"):
            if key in user:
                data = (base / user.pop(key)).read_bytes()
                user[f"{key}-data"] = base64.b64encode(data).decode()
    cluster = Cluster.from_kubeconfig_dict(config)
    private_dir = cluster._private_dir
    assert Path(private_dir).is_dir()
    assert oct(Path(private_dir).stat().st_mode & 0o777) == "0o700"
    assert not Path(private_dir).is_relative_to(tmp_path)
    assert cluster.exists("ServiceAccount", "default", namespace)
    cluster.close()
    assert not Path(private_dir).exists()
    assert list(tmp_path.iterdir()) == []


def test_cancel_closes_the_real_watch_streams_and_ends_every_watch_thread(
    cluster: Cluster, namespace: str
) -> None:
    cluster.server_side_apply(
        [deployment("web", namespace, behavior="never-ready")], force_conflicts=True
    )
    cancel = threading.Event()
    watching: list[threading.Thread] = []

    def cancel_while_watching() -> None:
        watching.extend(t for t in threading.enumerate() if t.name.endswith(f"-{namespace}"))
        cancel.set()

    armed = threading.Event()

    def progress(line: str) -> None:
        if not armed.is_set():  # the first judgement: all three lists have synced
            armed.set()
            threading.Timer(1.0, cancel_while_watching).start()  # the streams are open by then

    [web] = watch_rollouts(
        cluster,
        [Target("web", namespace, 1)],
        timeout_s=120,
        progress=progress,
        cancel=cancel,
    )
    assert web.result == "cancelled"  # not "timed-out": the cancel ended the wait
    assert web.reason.startswith("cancelled while waiting: ")
    assert sorted(t.name for t in watching) == [
        f"watch-{kind}-{namespace}" for kind in ("Deployment", "Pod", "ReplicaSet")
    ]
    # A stream left open would block its thread until the server's 240 s watch window ends
    # (a never-ready pod sends no events); closed, each thread ends at once.
    for thread in watching:
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name} is still reading its watch stream"
