"""The stack's pods really behave as the deploy tests need: statuses *and* events, per behaviour.

Each behaviour is chosen by the pod template annotation `deploy.test/behavior` (stack/kwok/*.yaml);
these tests pin down what a watcher or `kubectl` sees, so the action's end-to-end tests can rely
on it. Scheduling is the real kube-scheduler's; rollouts are the real controllers'.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.stack

T = TypeVar("T")
IMAGE = "registry.example/team/app:0123abc"
BEHAVIOR = "deploy.test/behavior"
READY_AFTER = "deploy.test/ready-after"


# -- helpers ------------------------------------------------------------------------------------


def deployment(
    name: str,
    *,
    replicas: int = 1,
    annotations: dict[str, str] | None = None,
    init_containers: tuple[str, ...] = (),
    cpu: str | None = None,
    probe: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": IMAGE}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": 8000}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {
                    "initContainers": [
                        {"name": init, "image": f"{IMAGE}-{init}"} for init in init_containers
                    ],
                    "containers": [container],
                },
            },
        },
    }


class Cluster:
    """Plain-dict views (camelCase, as the API sends them) of what the tests look at."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)

    def create(self, body: dict[str, Any]) -> None:
        if body["kind"] == "Deployment":
            self.apps.create_namespaced_deployment(self.namespace, body)
        elif body["kind"] == "Job":
            client.BatchV1Api(self.api).create_namespaced_job(self.namespace, body)
        else:
            raise AssertionError(body["kind"])

    def pods(self, app: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        return [self.api.sanitize_for_serialization(p) for p in found.items]

    def one_pod(self, app: str) -> dict[str, Any] | None:
        pods = self.pods(app)
        return pods[0] if len(pods) == 1 else None

    def deployment(self, name: str) -> dict[str, Any]:
        found = self.apps.read_namespaced_deployment(name, self.namespace)
        return dict(self.api.sanitize_for_serialization(found))

    def events(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        name = pod["metadata"]["name"]
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [self.api.sanitize_for_serialization(e) for e in found.items]


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    seen: Callable[[], object] | None = None,
) -> T:
    """Poll until `probe` returns something truthy; on timeout say what was last seen."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout}s waiting for {what}; last seen: {seen and seen()}"
            )
        time.sleep(0.1)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == kind), {})


def statuses(pod: dict[str, Any], field: str = "containerStatuses") -> list[dict[str, Any]]:
    return list(pod.get("status", {}).get(field) or [])


def waiting_reason(status: dict[str, Any]) -> str | None:
    return (status.get("state", {}).get("waiting") or {}).get("reason")


def rollout_complete(dep: dict[str, Any]) -> bool:
    """kubectl's deploymentRolloutStatus 'successfully rolled out' condition."""
    spec, status = dep["spec"], dep.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == spec["replicas"]
        and status.get("replicas", 0) == spec["replicas"]
        and status.get("availableReplicas", 0) == spec["replicas"]
    )


def kubectl(stack: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={stack['KUBECONFIG']}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def cluster(kube_admin: client.ApiClient, namespace: str) -> Cluster:
    return Cluster(kube_admin, namespace)


# -- default pods, rollouts, Jobs ---------------------------------------------------------------


def test_default_pods_become_ready_the_moment_their_containers_start(cluster: Cluster) -> None:
    cluster.create(deployment("web", replicas=2, init_containers=("migrate",)))

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = cluster.pods("web")
        ok = len(pods) == 2 and all(condition(p, "Ready").get("status") == "True" for p in pods)
        return pods if ok else None

    pods = wait_for("2 Ready pods", ready_pods, timeout=15, seen=lambda: cluster.pods("web"))
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == "kwok-node-0"
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("10.244.0.0/16")
        [app] = statuses(pod)
        assert app["ready"] is True
        assert "running" in app["state"]
        [migrate] = statuses(pod, "initContainerStatuses")
        assert migrate["state"]["terminated"]["exitCode"] == 0
        # No readiness hold (like a fast kubelet): Ready from the very start of the container,
        # where a ready-after pod starts un-ready. How soon after creation is kwok's delay
        # (0.4-1 s) plus however loaded the machine is, so it is not asserted.
        created = parse_time(pod["metadata"]["creationTimestamp"])
        started = parse_time(app["state"]["running"]["startedAt"])
        became_ready = parse_time(condition(pod, "Ready")["lastTransitionTime"])
        assert created <= started == became_ready


def test_a_rollout_and_a_second_rollout_complete_and_kubectl_agrees_at_once(
    cluster: Cluster, stack: dict[str, str]
) -> None:
    cluster.create(deployment("api", replicas=3))
    wait_for(
        "rollout 1",
        lambda: rollout_complete(cluster.deployment("api")),
        seen=lambda: cluster.deployment("api")["status"],
    )
    first = kubectl(
        stack, "rollout", "status", "deployment/api", "-n", cluster.namespace, "--timeout=5s"
    )
    assert first.returncode == 0, first.stderr
    assert 'deployment "api" successfully rolled out' in first.stdout

    old_pods = {p["metadata"]["name"] for p in cluster.pods("api")}
    cluster.apps.patch_namespaced_deployment(
        "api",
        cluster.namespace,
        {"spec": {"template": {"metadata": {"annotations": {"revision": "2"}}}}},
    )
    wait_for(
        "rollout 2",
        lambda: rollout_complete(cluster.deployment("api")),
        seen=lambda: cluster.deployment("api")["status"],
    )
    second = kubectl(
        stack, "rollout", "status", "deployment/api", "-n", cluster.namespace, "--timeout=5s"
    )
    assert second.returncode == 0, second.stderr
    # The old ReplicaSet's pods were deleted for real (kwok's pod-delete stage), not left over.
    wait_for(
        "the old pods to be gone",
        lambda: not old_pods & {p["metadata"]["name"] for p in cluster.pods("api")},
        seen=lambda: [p["metadata"]["name"] for p in cluster.pods("api")],
    )
    assert len(cluster.pods("api")) == 3


def test_a_job_completes(cluster: Cluster) -> None:
    batch = client.BatchV1Api(cluster.api)
    cluster.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "completions": 2,
                "template": {
                    "metadata": {"labels": {"app": "once"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "task", "image": IMAGE}],
                    },
                },
            },
        }
    )

    def finished() -> dict[str, Any] | None:
        job = cluster.api.sanitize_for_serialization(
            batch.read_namespaced_job("once", cluster.namespace)
        )
        return job if condition(job, "Complete").get("status") == "True" else None

    job = wait_for("Job complete", finished, timeout=30)
    assert job["status"]["succeeded"] == 2
    pods = cluster.pods("once")
    assert pods
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert all(statuses(p)[0]["state"]["terminated"]["exitCode"] == 0 for p in pods)


def job(name: str, behavior: str, *, duration: str, backoff_limit: int) -> dict[str, Any]:
    """A migrate-shaped Job: one completion, restartPolicy Never, pods with a test behaviour."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {BEHAVIOR: behavior, "deploy.test/duration": duration},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": IMAGE}],
                },
            },
        },
    }


def read_job(cluster: Cluster, name: str) -> dict[str, Any]:
    found = client.BatchV1Api(cluster.api).read_namespaced_job(name, cluster.namespace)
    return dict(cluster.api.sanitize_for_serialization(found))


def test_a_complete_job_pod_runs_for_its_duration_then_succeeds_and_kubectl_wait_agrees(
    cluster: Cluster, stack: dict[str, str]
) -> None:
    cluster.create(job("migrate", "complete", duration="2s", backoff_limit=0))
    pod = wait_for(
        "the pod Running",
        lambda: next(
            (p for p in cluster.pods("migrate") if p["status"]["phase"] == "Running"), None
        ),
        seen=lambda: cluster.pods("migrate"),
    )
    [running] = statuses(pod)
    assert "running" in running["state"]
    assert condition(read_job(cluster, "migrate"), "Complete") == {}
    waited = kubectl(
        stack,
        "wait",
        "--for=condition=complete",
        "job/migrate",
        "-n",
        cluster.namespace,
        "--timeout=25s",
    )
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    finished = read_job(cluster, "migrate")
    assert condition(finished, "Complete")["status"] == "True"
    assert finished["status"]["succeeded"] == 1
    [pod] = cluster.pods("migrate")
    assert pod["status"]["phase"] == "Succeeded"
    [ended] = statuses(pod)
    assert (ended["state"]["terminated"]["exitCode"], ended["state"]["terminated"]["reason"]) == (
        0,
        "Completed",
    )
    # the containers ran for the duration the annotation asked for (kwok's delay, not less)
    ran = parse_time(ended["state"]["terminated"]["finishedAt"]) - parse_time(
        ended["state"]["terminated"]["startedAt"]
    )
    assert ran.total_seconds() >= 1.0


def test_a_fail_exit_job_pod_fails_with_that_exit_code_and_the_job_controller_gives_up(
    cluster: Cluster,
) -> None:
    cluster.create(job("migrate", "fail-exit-3", duration="500ms", backoff_limit=1))

    def failed() -> dict[str, Any] | None:
        found = read_job(cluster, "migrate")
        return found if condition(found, "Failed").get("status") == "True" else None

    found = wait_for(
        "the Job Failed", failed, timeout=60, seen=lambda: read_job(cluster, "migrate")
    )
    assert condition(found, "Failed")["reason"] == "BackoffLimitExceeded"
    assert condition(found, "FailureTarget")["status"] == "True"
    # backoffLimit 1: the real Job controller retried once, so two pods failed
    pods = cluster.pods("migrate")
    assert found["status"]["failed"] == 2 == len(pods)
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        [ended] = statuses(pod)
        assert (
            ended["state"]["terminated"]["exitCode"],
            ended["state"]["terminated"]["reason"],
        ) == (
            3,
            "Error",
        )


def test_a_behaviour_typo_is_reported_on_the_pod(cluster: Cluster) -> None:
    cluster.create(job("migrate", "fail-exit-nope", duration="1s", backoff_limit=0))

    def reported() -> list[dict[str, Any]] | None:
        pods = cluster.pods("migrate")
        events = cluster.events(pods[0]) if pods else []
        return [e for e in events if e["reason"] == "UnknownTestBehavior"] or None

    [event] = wait_for(
        "an UnknownTestBehavior event", reported, seen=lambda: cluster.pods("migrate")
    )
    assert "fail-exit-N" in event["message"]
    [pod] = cluster.pods("migrate")
    assert pod["status"]["phase"] == "Pending"


# -- failing behaviours -------------------------------------------------------------------------


def transitions(
    cluster: Cluster, app: str, field: str, until_restarts: int, timeout: float = 30.0
) -> list[tuple[float, dict[str, Any], dict[str, Any]]]:
    """Every change of the first (init) container's state kind or restart count, as a watch
    sees it (a poller would miss the short waiting window): (monotonic time, status, pod)."""
    seen: list[tuple[float, dict[str, Any], dict[str, Any]]] = []
    stream = watch.Watch()
    deadline = time.monotonic() + timeout
    for event in stream.stream(
        cluster.core.list_namespaced_pod,
        cluster.namespace,
        label_selector=f"app={app}",
        timeout_seconds=int(timeout),
    ):
        pod = cluster.api.sanitize_for_serialization(event["object"])
        found = statuses(pod, field)
        if found:
            status = found[0]
            key = (status["restartCount"], next(iter(status["state"])))
            last = seen[-1][1] if seen else None
            if last is None or key != (last["restartCount"], next(iter(last["state"]))):
                seen.append((time.monotonic(), status, pod))
            if status["restartCount"] >= until_restarts:
                stream.stop()
        if time.monotonic() > deadline:
            stream.stop()
    return seen


def kinds(seen: list[tuple[float, dict[str, Any], dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(s["restartCount"], next(iter(s["state"]))) for _, s, _ in seen]


def time_in(seen: list[tuple[float, dict[str, Any], dict[str, Any]]], kind: str) -> float:
    """Seconds spent in state `kind`, summed over the complete stays."""
    return sum(
        later - at
        for (at, status, _), (later, _, _) in itertools.pairwise(seen)
        if kind in status["state"]
    )


@pytest.mark.parametrize("probe", [False, True], ids=["no-probe", "readiness-probe"])
def test_crash_loop_runs_then_ends_then_backs_off_briefly_as_a_real_kubelet_does(
    cluster: Cluster, probe: bool
) -> None:
    # The sequence a kubelet v1.36 shows (issue 17), compressed: running (Ready without a
    # readiness probe) -> terminated Error exit 1, most of each back-off -> waiting
    # CrashLoopBackOff only briefly -> running with one restart more.
    cluster.create(deployment("worker", annotations={BEHAVIOR: "crash-loop"}, probe=probe))
    seen = transitions(cluster, "worker", "containerStatuses", until_restarts=3)
    assert kinds(seen)[:10] == [
        (0, "running"),
        (0, "terminated"),
        (0, "waiting"),
        (1, "running"),
        (1, "terminated"),
        (1, "waiting"),
        (2, "running"),
        (2, "terminated"),
        (2, "waiting"),
        (3, "running"),
    ], kinds(seen)
    for _, status, pod in seen:
        state = status["state"]
        if "running" in state:
            # Without a probe, Ready the moment it starts: kubectl may call the rollout done.
            assert status["ready"] is (not probe)
            assert condition(pod, "Ready")["status"] == ("False" if probe else "True")
        elif "terminated" in state:
            assert (state["terminated"]["exitCode"], state["terminated"]["reason"]) == (1, "Error")
            assert status["ready"] is False
            assert condition(pod, "Ready")["status"] == "False"
        else:
            assert state["waiting"]["reason"] == "CrashLoopBackOff"
            assert "back-off" in state["waiting"]["message"]
            assert status["lastState"]["terminated"]["exitCode"] == 1
        assert pod["status"]["phase"] == "Running"
    # Most of a back-off is spent terminated; the waiting window is the short one.
    assert time_in(seen, "terminated") > 2 * time_in(seen, "waiting"), seen
    events = cluster.events(seen[-1][2])
    assert any(e["type"] == "Warning" and e["reason"] == "BackOff" for e in events), events


def test_init_crash_loop_is_first_seen_ended_with_a_previous_run_then_cycles(
    cluster: Cluster,
) -> None:
    cluster.create(
        deployment(
            "worker", annotations={BEHAVIOR: "init-crash-loop"}, init_containers=("migrate",)
        )
    )
    seen = transitions(cluster, "worker", "initContainerStatuses", until_restarts=3)
    assert kinds(seen)[:5] == [
        (1, "terminated"),
        (1, "waiting"),
        (2, "running"),
        (2, "terminated"),
        (2, "waiting"),
    ], kinds(seen)
    _, first, pod = seen[0]
    assert first["lastState"]["terminated"]["exitCode"] == 1  # a previous run from the start
    assert first["state"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Pending"
    assert condition(pod, "Initialized")["status"] == "False"
    for _, _, later in seen:
        assert waiting_reason(statuses(later)[0]) == "PodInitializing"


@pytest.mark.parametrize("init_containers", [(), ("migrate",)], ids=["app", "init"])
def test_image_pull_not_found_cycles_err_image_pull_and_backoff_saying_not_found(
    cluster: Cluster, init_containers: tuple[str, ...]
) -> None:
    cluster.create(
        deployment(
            "web", annotations={BEHAVIOR: "image-pull-not-found"}, init_containers=init_containers
        )
    )
    # The first container the kubelet would start is the one whose pull fails.
    field = "initContainerStatuses" if init_containers else "containerStatuses"
    reasons_seen: set[str] = set()

    def both_reasons_seen() -> dict[str, Any] | None:
        pod = cluster.one_pod("web")
        if not pod or not statuses(pod, field):
            return None
        failing = statuses(pod, field)[0]
        reason = waiting_reason(failing)
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            message = failing["state"]["waiting"]["message"]
            assert "not found" in message
            assert failing["image"] in message
            reasons_seen.add(reason)
        return pod if reasons_seen == {"ErrImagePull", "ImagePullBackOff"} else None

    pod = wait_for(
        "ErrImagePull and ImagePullBackOff",
        both_reasons_seen,
        timeout=20,
        seen=lambda: (reasons_seen, cluster.pods("web")),
    )
    assert pod["status"]["phase"] == "Pending"
    assert condition(pod, "Ready")["status"] == "False"
    if init_containers:
        assert condition(pod, "Initialized")["status"] == "False"
        assert waiting_reason(statuses(pod)[0]) == "PodInitializing"
    events = cluster.events(pod)
    assert any(
        e["type"] == "Warning" and e["reason"] == "Failed" and "not found" in e["message"]
        for e in events
    ), events


def test_init_fail_exits_1_and_the_pod_never_initializes(cluster: Cluster) -> None:
    cluster.create(
        deployment(
            "worker",
            annotations={BEHAVIOR: "init-fail"},
            init_containers=("migrate", "collectstatic"),
        )
    )
    states_seen: set[str] = set()
    counts: list[int] = []

    def init_error_and_backoff_seen() -> dict[str, Any] | None:
        pod = cluster.one_pod("worker")
        if not pod or not statuses(pod, "initContainerStatuses"):
            return None
        migrate = statuses(pod, "initContainerStatuses")[0]
        assert migrate["name"] == "migrate"
        if "terminated" in migrate["state"]:
            assert migrate["state"]["terminated"]["exitCode"] == 1
            assert migrate["state"]["terminated"]["reason"] == "Error"
            states_seen.add("Init:Error")
        elif waiting_reason(migrate) == "CrashLoopBackOff":
            assert migrate["lastState"]["terminated"]["exitCode"] == 1
            states_seen.add("Init:CrashLoopBackOff")
        counts.append(migrate["restartCount"])
        done = states_seen == {"Init:Error", "Init:CrashLoopBackOff"} and counts[-1] >= 2
        return pod if done else None

    pod = wait_for(
        "Init:Error, Init:CrashLoopBackOff and restarts",
        init_error_and_backoff_seen,
        timeout=20,
        seen=lambda: (states_seen, counts[-1:], cluster.pods("worker")),
    )
    assert counts == sorted(counts), "restartCount never goes down"
    assert pod["status"]["phase"] == "Pending"
    initialized = condition(pod, "Initialized")
    assert initialized["status"] == "False"
    assert "migrate" in initialized["message"]
    collectstatic = statuses(pod, "initContainerStatuses")[1]
    assert waiting_reason(collectstatic) == "PodInitializing"
    assert waiting_reason(statuses(pod)[0]) == "PodInitializing"
    events = cluster.events(pod)
    assert any(e["type"] == "Warning" and e["reason"] == "BackOff" for e in events), events


def test_never_ready_pods_run_but_never_become_ready(cluster: Cluster) -> None:
    cluster.create(deployment("web", annotations={BEHAVIOR: "never-ready"}))

    def running() -> dict[str, Any] | None:
        pod = cluster.one_pod("web")
        return pod if pod and pod["status"].get("phase") == "Running" else None

    wait_for("Running", running, seen=lambda: cluster.pods("web"))
    time.sleep(3)  # a default pod would have been Ready long ago
    pod = cluster.one_pod("web")
    assert pod is not None
    assert pod["status"]["phase"] == "Running"
    assert condition(pod, "Ready")["status"] == "False"
    assert condition(pod, "ContainersReady")["reason"] == "ContainersNotReady"
    [app] = statuses(pod)
    assert app["ready"] is False
    assert app["started"] is True
    assert "running" in app["state"]
    assert not cluster.deployment("web")["status"].get("availableReplicas")


def test_ready_after_holds_the_pod_unready_for_that_long(cluster: Cluster) -> None:
    # 7 s: above the 5 s an unparsable value falls back to, so a lower bound alone shows that
    # the annotation's value was used (an upper bound would only measure the machine's load)
    cluster.create(deployment("slow", annotations={READY_AFTER: "7s"}))

    def running_unready() -> dict[str, Any] | None:
        pod = cluster.one_pod("slow")
        if pod and pod["status"].get("phase") == "Running":
            assert condition(pod, "Ready")["status"] == "False"
            return pod
        return None

    wait_for("Running but not Ready", running_unready, seen=lambda: cluster.pods("slow"))

    def ready() -> dict[str, Any] | None:
        pod = cluster.one_pod("slow")
        return pod if pod and condition(pod, "Ready").get("status") == "True" else None

    pod = wait_for("Ready", ready, timeout=60, seen=lambda: cluster.pods("slow"))
    [app] = statuses(pod)
    assert app["ready"] is True
    # kwok's own timestamps (whole seconds: a 7 s hold reads as at least 7), not when we looked
    started = parse_time(app["state"]["running"]["startedAt"])
    became_ready = parse_time(condition(pod, "Ready")["lastTransitionTime"])
    held = (became_ready - started).total_seconds()
    assert held >= 7, f"un-ready for {held:.0f}s, expected at least 7s"


def test_asking_for_more_cpu_than_the_node_has_is_unschedulable(cluster: Cluster) -> None:
    cluster.create(deployment("greedy", cpu="100"))

    def unschedulable() -> dict[str, Any] | None:
        pod = cluster.one_pod("greedy")
        scheduled = condition(pod, "PodScheduled") if pod else {}
        return pod if scheduled.get("reason") == "Unschedulable" else None

    pod = wait_for(
        "PodScheduled=False Unschedulable", unschedulable, seen=lambda: cluster.pods("greedy")
    )
    scheduled = condition(pod, "PodScheduled")
    assert scheduled["status"] == "False"
    assert "Insufficient cpu" in scheduled["message"]
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    events = cluster.events(pod)
    assert any(e["type"] == "Warning" and e["reason"] == "FailedScheduling" for e in events)


def test_an_unknown_behaviour_is_reported_not_silently_ignored(cluster: Cluster) -> None:
    cluster.create(deployment("typo", annotations={BEHAVIOR: "crashloop"}))

    def reported() -> list[dict[str, Any]] | None:
        pod = cluster.one_pod("typo")
        events = cluster.events(pod) if pod else []
        return [e for e in events if e["reason"] == "UnknownTestBehavior"] or None

    [event] = wait_for("an UnknownTestBehavior event", reported)
    assert "crash-loop" in event["message"]
    pod = cluster.one_pod("typo")
    assert pod is not None
    assert pod["status"]["phase"] == "Pending"


# -- identities ---------------------------------------------------------------------------------


def test_the_limited_identity_may_act_in_its_namespace_only(stack: dict[str, str]) -> None:
    limited = config.new_client_from_config(config_file=stack["DJK_LIMITED_KUBECONFIG"])
    core = client.CoreV1Api(limited)
    name = f"probe-{time.monotonic_ns()}"
    try:
        core.create_namespaced_config_map(
            "djk-limited", {"metadata": {"name": name}, "data": {"k": "v"}}
        )
        assert core.read_namespaced_config_map(name, "djk-limited").data == {"k": "v"}
        core.list_namespaced_pod("djk-limited")
        client.AppsV1Api(limited).list_namespaced_deployment("djk-limited")

        for forbidden in (
            lambda: core.list_namespaced_pod("default"),
            lambda: core.create_namespaced_config_map("default", {"metadata": {"name": name}}),
            core.list_namespace,
            lambda: core.read_namespaced_secret("x", "kube-system"),
        ):
            with pytest.raises(ApiException) as denied:
                forbidden()
            assert denied.value.status == 403
            assert 'User "djk-limited"' in json.loads(denied.value.body)["message"]
    finally:
        core.delete_namespaced_config_map(name, "djk-limited")
        limited.close()
