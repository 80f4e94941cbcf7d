"""The stack serves container logs through the real API server, as a cluster does.

`GET /api/v1/namespaces/<ns>/pods/<pod>/log` goes from the API server to the node's InternalIP
and kubelet port over TLS (verified against the stack's CA), where kwok answers from the
prepared log the pod template names (`deploy.test/logs`, stack/podlogs.py). The first tests need
no stack: they pin the prepared logs and the Stage that serves them to each other.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stack import podlogs
from stack.controlplane import KWOK_DIR, NODE_NAME
from tests.stack.test_kwok_behaviours import Cluster, deployment, wait_for

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (stdout|stderr) F (.*)$")


# -- no stack needed ----------------------------------------------------------------------------


def test_every_prepared_log_becomes_cri_lines_that_say_the_same(tmp_path: Path) -> None:
    podlogs.write_cri_files(tmp_path, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    for name in podlogs.PREPARED:
        for previous in (False, True):
            raw = (tmp_path / podlogs.file_name(name, previous=previous)).read_text()
            parsed = [CRI_LINE.fullmatch(line) for line in raw.splitlines()]
            assert all(parsed), name
            assert [m.group(2) for m in parsed if m] == podlogs.lines(name, previous=previous)
    previous_end = (tmp_path / "long.previous.log").read_text().splitlines()[-1][:27]
    current_start = (tmp_path / "long.log").read_text()[:27]
    assert previous_end < current_start  # the previous run ended before the current began


def test_each_prepared_log_has_more_than_50_lines_and_two_different_runs() -> None:
    for name in podlogs.PREPARED:
        current, previous = podlogs.lines(name), podlogs.lines(name, previous=True)
        assert len(current) > 50 and len(previous) > 50, name
        assert current[-1] != previous[-1], name
    migrate = podlogs.lines("migrate-failure")
    assert migrate[-1].startswith("django.db.utils.OperationalError: ")
    assert any(
        podlogs.SECRET_IN_LOG in line
        for line in podlogs.lines("migrate-failure", previous=True)[-50:]
    )
    assert len(podlogs.lines("long")) == podlogs.LONG_LINES == 5000


def test_the_stage_serves_exactly_the_prepared_names() -> None:
    stage = (KWOK_DIR / "pod-logs.yaml").read_text()
    values = stage.split('["deploy.test/logs"]', 1)[1].split("operator: 'In'", 1)[1]
    listed = re.findall(r"^\s+- '([a-z0-9-]+)'$", values.split("- key:", 1)[0], re.M)
    assert tuple(listed) == podlogs.PREPARED
    with pytest.raises(ValueError, match="no prepared log"):
        podlogs.lines("../../etc/passwd")


# -- on the stack -------------------------------------------------------------------------------


@pytest.fixture
def cluster(kube_admin: client.ApiClient, namespace: str) -> Cluster:
    return Cluster(kube_admin, namespace)


def crash_looping_pod(cluster: Cluster, name: str, log: str | None) -> dict[str, Any]:
    annotations = {"deploy.test/behavior": "crash-loop"}
    if log:
        annotations[podlogs.LOGS_ANNOTATION] = log
    cluster.create(deployment(name, annotations=annotations))

    def restarted() -> dict[str, Any] | None:
        pod = cluster.one_pod(name)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return pod if statuses and statuses[0].get("restartCount", 0) >= 1 else None

    return wait_for(f"{name} crash-looping", restarted, seen=lambda: cluster.pods(name))


def read_log(cluster: Cluster, pod: dict[str, Any], **options: Any) -> list[str]:
    # Raw bytes: the client would otherwise hand back the repr of the body.
    response = cluster.core.read_namespaced_pod_log(
        pod["metadata"]["name"],
        cluster.namespace,
        container="app",
        _preload_content=False,
        **options,
    )
    return bytes(response.data).decode().splitlines()


@pytest.mark.stack
def test_the_node_points_the_api_server_at_kwoks_kubelet_over_verified_tls(
    kube_admin: client.ApiClient, stack: dict[str, str]
) -> None:
    node = client.CoreV1Api(kube_admin).read_node(NODE_NAME).to_dict()
    addresses = [(a["type"], a["address"]) for a in node["status"]["addresses"]]
    assert addresses == [("InternalIP", "127.0.0.1")]
    port = node["status"]["daemon_endpoints"]["kubelet_endpoint"]["port"]
    ca = Path(stack["KUBECONFIG"]).parent / "controlplane" / "pki" / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        subject = dict(item for pair in tls.getpeercert()["subject"] for item in pair)
    assert subject["commonName"] == f"system:node:{NODE_NAME}"


@pytest.mark.stack
def test_a_pod_serves_its_prepared_log_current_and_previous_with_a_tail(cluster: Cluster) -> None:
    pod = crash_looping_pod(cluster, "web", "gunicorn-boot-failure")
    assert read_log(cluster, pod) == podlogs.lines("gunicorn-boot-failure")
    assert read_log(cluster, pod, tail_lines=5) == podlogs.lines("gunicorn-boot-failure")[-5:]
    assert (
        read_log(cluster, pod, tail_lines=50, previous=True)
        == podlogs.lines("gunicorn-boot-failure", previous=True)[-50:]
    )
    # kwok's Logs object for it belongs to the pod: it goes when the pod goes.
    logs = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", cluster.namespace, "logs", pod["metadata"]["name"]
    )
    [owner] = logs["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Pod", pod["metadata"]["uid"])


@pytest.mark.stack
def test_the_tail_of_a_long_log_comes_back_under_a_byte_limit(cluster: Cluster) -> None:
    pod = crash_looping_pod(cluster, "chatty", "long")
    tail = read_log(cluster, pod, tail_lines=50, limit_bytes=256 * 1024)
    assert tail == podlogs.lines("long")[-50:]
    head = read_log(cluster, pod, limit_bytes=256 * 1024)
    assert head[0] == podlogs.lines("long")[0] and len(head) < podlogs.LONG_LINES


@pytest.mark.stack
def test_a_pod_without_prepared_logs_gets_the_kubelets_bad_request(cluster: Cluster) -> None:
    pod = crash_looping_pod(cluster, "fresh", None)
    with pytest.raises(ApiException) as caught:
        read_log(cluster, pod, tail_lines=50)
    assert caught.value.status == 400
    message = json.loads(caught.value.body)["message"]
    assert message.startswith('no logs found for container "app" in pod ')


@pytest.mark.stack
def test_an_init_crash_loop_has_a_previous_run_from_its_first_status(cluster: Cluster) -> None:
    annotations = {
        "deploy.test/behavior": "init-crash-loop",
        podlogs.LOGS_ANNOTATION: "migrate-failure",
    }
    cluster.create(deployment("worker", annotations=annotations, init_containers=("migrate",)))

    def first_status() -> dict[str, Any] | None:
        pod = cluster.one_pod("worker")
        return pod if (pod or {}).get("status", {}).get("initContainerStatuses") else None

    pod = wait_for("worker's init status", first_status, seen=lambda: cluster.pods("worker"))
    [migrate] = pod["status"]["initContainerStatuses"]
    # Ended (Init:Error) with a run before it, as a kubelet shows it between restarts.
    assert migrate["state"]["terminated"]["reason"] == "Error"
    assert migrate["restartCount"] >= 1
    assert migrate["lastState"]["terminated"]["exitCode"] == 1
    assert pod["status"]["phase"] == "Pending"
    name = pod["metadata"]["name"]
    previous = cluster.core.read_namespaced_pod_log(
        name, cluster.namespace, container="migrate", previous=True, _preload_content=False
    )
    want = podlogs.lines("migrate-failure", previous=True)
    assert bytes(previous.data).decode().splitlines() == want
    # It keeps failing: the restart count grows.
    wait_for(
        "a second restart",
        lambda: (
            (cluster.one_pod("worker") or {})["status"]["initContainerStatuses"][0]["restartCount"]
            >= 2
        ),
        seen=lambda: cluster.pods("worker"),
    )
