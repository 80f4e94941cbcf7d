# ruff: noqa: F811 - the fixtures imported from test_deploy_action are parameters here
"""Whole-release rollback and a failed migration's config, through the action container against
the stack (real Deployment, StatefulSet, DaemonSet and ControllerRevision controllers). Where kwok
plays the kubelet there are no real env vars, so what a restarted pod would read is asserted on the
objects in the API server; the last test runs on the stack's real node, where a restarted
container really reads its ConfigMap and Secret again."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest

from deployer import applyset, rollback
from deployer.kube import Cluster
from stack import node
from tests.e2e.test_deploy_action import (  # noqa: F401 - fixtures
    SECRET_VALUE,
    Deploy,
    built_sha,
    deploy,
    image_repo,
    kubectl,
    workspace,
)
from tests.e2e.test_workload_kinds import daemonset, deployment, get, job, results, statefulset
from tests.harness import real_node

pytestmark = [pytest.mark.stack, pytest.mark.docker]

GOOD_SECRETS = f"SECRET_KEY={SECRET_VALUE}\n"
BAD_SECRETS = f"SECRET_KEY={SECRET_VALUE}-new\nADDED=1\n"


def config(**data: str) -> str:
    lines = "".join(f'  {k}: "{v}"\n' for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n{lines}"


EXTRA = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-config\ndata: {A: "1"}\n'


def secret_data(stack: dict[str, str], namespace: str) -> dict[str, str]:
    raw = get(stack, namespace, "secret/app-env", "{.data}")
    return {k: base64.b64decode(v).decode() for k, v in json.loads(raw).items()}


def template_annotations(stack: dict[str, str], namespace: str, what: str) -> str:
    return get(stack, namespace, what, "{.spec.template.metadata.annotations}")


def test_a_failed_release_is_rolled_back_whole_and_the_restored_release_watched(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    inputs = {"secret-name": "app-env"}
    good = deploy(
        "---\n".join(
            [config(DEBUG="false"), deployment("web"), statefulset("db"), daemonset("logs")]
        ),
        secrets=GOOD_SECRETS,
        **inputs,
    )
    assert good.exit_code == 0, good.log[-4000:]
    before = {
        what: template_annotations(stack, namespace, what)
        for what in ("deployment/web", "statefulset/db", "daemonset/logs")
    }

    bad = deploy(
        "---\n".join(
            [
                config(DEBUG="true", NEW_KEY="x"),
                EXTRA,
                deployment("web", {"deploy.test/note": "v2"}),
                statefulset("db", {"deploy.test/behavior": "crash-loop"}),
                daemonset("logs").replace("labels: {app: logs}\n", "labels: {app: logs, v: '2'}\n"),
            ]
        ),
        secrets=BAD_SECRETS,
        **inputs,
        **{"rollback-on-failure": "true"},
    )
    assert bad.exit_code == 1, bad.log[-4000:]
    assert bad.outputs["result"] == "failed"
    assert results(bad)["StatefulSet/db"]["result"] == "failed"

    # Config: back as it was; what the failed deploy created is gone.
    assert get(stack, namespace, "configmap/app-config", "{.data}") == '{"DEBUG":"false"}'
    assert kubectl(stack, "-n", namespace, "get", "configmap/extra-config").returncode != 0
    assert secret_data(stack, namespace) == {"SECRET_KEY": SECRET_VALUE}
    # Every workload kind the deploy changed runs its previous template again.
    for what, template in before.items():
        assert template_annotations(stack, namespace, what) == template, what
    assert '"v":"2"' not in get(stack, namespace, "daemonset/logs", "{.spec.template.metadata}")
    # ... and it is healthy: kubectl, the reference peer, agrees with our verdict.
    for what in ("deployment/web", "statefulset/db", "daemonset/logs"):
        peer = kubectl(stack, "-n", namespace, "rollout", "status", what, "--timeout=5s")
        assert peer.returncode == 0, (what, peer.stderr)

    log = bad.log
    assert "::group::Rollback: the whole release, to what ran before this deploy" in log
    assert "::group::Rollback: watch the restored release" in log
    assert "configmap/app-config: restored to what it was before this deploy" in log
    assert "secret/app-env: restored to what it was before this deploy" in log
    assert "configmap/extra-config: deleted (this deploy created it)" in log
    assert "statefulset/db: back to the template of controllerrevision/db-" in log
    assert "deleted pod db-1: it ran the failed revision" in log
    state = next(line for line in log.splitlines() if line.startswith("State: "))
    # For `pytest -s`: the figures in the report (the restored release's verdicts).
    restored = log.split("::group::Rollback: watch the restored release", 1)[1]
    timings = [line for line in restored.splitlines() if " succeeded after " in line]
    print("\n[rollback] " + state + "\n[rollback] " + " | ".join(timings))
    assert "The restored release is healthy: " in state, state
    for what in ("deployment/web", "statefulset/db", "daemonset/logs"):
        assert f"{what} succeeded" in state.split("The restored release is healthy: ")[1]
    assert "### Rollback" in bad.summary
    assert "The restored release: succeeded" in bad.summary
    # The failure stays the deploy's verdict: the restored rollouts are not in its outputs.
    assert [d["result"] for d in json.loads(bad.outputs["deployments"])].count("failed") >= 1


def test_a_failed_migration_leaves_the_previous_config_in_force(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    inputs = {"secret-name": "app-env", "run-first": "migrate"}
    good = deploy(
        "---\n".join([config(DEBUG="false"), deployment("web"), job("migrate", "complete")]),
        secrets=GOOD_SECRETS,
        **inputs,
    )
    assert good.exit_code == 0, good.log[-4000:]
    web_before = template_annotations(stack, namespace, "deployment/web")

    bad = deploy(
        "---\n".join([config(DEBUG="true"), deployment("web"), job("migrate", "fail-exit-3")]),
        secrets=BAD_SECRETS,
        **inputs,
    )
    assert bad.exit_code == 1, bad.log[-4000:]
    assert "nothing else was applied" in bad.log
    # An old pod that restarts now reads what it read before: the objects it reads are back.
    assert get(stack, namespace, "configmap/app-config", "{.data}") == '{"DEBUG":"false"}'
    assert secret_data(stack, namespace) == {"SECRET_KEY": SECRET_VALUE}
    assert template_annotations(stack, namespace, "deployment/web") == web_before
    assert "::group::Restore config: the run-first Jobs failed" in bad.log
    assert "Rolled back: configmap/app-config (restored), secret/app-env (restored)." in bad.log
    assert "### Rollback" in bad.summary


def test_the_rights_rollback_and_prune_need_are_asked_of_the_real_api_server(
    stack: dict[str, str], namespace: str
) -> None:
    """SelfSubjectAccessReviews on the stack: the namespace-limited identity lacks them in
    another namespace (named, kubectl-style), has them in its own."""

    def bodies(ns: str) -> list[dict[str, object]]:
        return [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}},
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "s", "namespace": ns},
            },
        ]

    def missing(ns: str) -> list[str]:
        docs = bodies(ns)
        also = rollback.rights_needed(docs, workloads=True) + applyset.rights_needed(docs, ns)
        with Cluster.from_kubeconfig_file(stack["DJK_LIMITED_KUBECONFIG"]) as limited:
            return limited.missing_permissions(docs, also)

    elsewhere = missing(namespace)
    for right in (
        f"get configmaps in namespace {namespace}",
        f"delete statefulsets.apps in namespace {namespace}",
        f"list controllerrevisions.apps in namespace {namespace}",
        f"delete pods in namespace {namespace}",
        f"get secrets in namespace {namespace}",
    ):
        assert right in elsewhere, (right, elsewhere)
    assert missing("djk-limited") == []


# -- on the real node ----------------------------------------------------------------------------

# The container prints what it read at start (the secret as a digest), then waits until the test
# touches /tmp/restart and exits 1: the kubelet restarts it in the same pod, and the new run
# resolves its envFrom again, from whatever the ConfigMap and Secret hold at that moment.
READS_CONFIG = (
    'echo "config: DEBUG=$DEBUG key=$(printf %s "$SECRET_KEY" | sha256sum | cut -c1-12)"; '
    "until [ -e /tmp/restart ]; do sleep 0.2; done; exit 1"
)


def real_web(command: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
        "      labels: {app: web}\n    spec:\n      terminationGracePeriodSeconds: 1\n"
        "      containers:\n        - name: web\n          image: <IMAGE>\n"
        f"          command: [sh, -c, {json.dumps(command)}]\n"
        "          envFrom:\n            - configMapRef: {name: app-config}\n"
        "            - secretRef: {name: app-env}\n"
    )


def real_migrate(exit_code: int) -> str:
    say = f"echo migration 0002 exits {exit_code}; exit {exit_code}"
    return (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\nspec:\n"
        "  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      containers:\n        - name: migrate\n          image: <IMAGE>\n"
        f"          command: [sh, -c, {json.dumps(say)}]\n"
    )


def on_the_real_node(stack: dict[str, str], namespace: str) -> None:
    real_node.place_namespace(stack, namespace)  # fails when the stack runs no real node


def container_runs(stack: dict[str, str], namespace: str) -> tuple[str, int, str]:
    """The web pod's name, its container's restart count and the current run's log."""
    listed = kubectl(stack, "-n", namespace, "get", "pods", "-l", "app=web", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    [pod] = listed.stdout.split()
    restarts = get(stack, namespace, pod, "{.status.containerStatuses[0].restartCount}")
    out = kubectl(stack, "-n", namespace, "logs", pod, "-c", "web")
    return pod, int(restarts or 0), out.stdout if out.returncode == 0 else ""


def test_an_old_pod_restarted_after_a_failed_migration_reads_the_previous_config_on_a_real_node(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    """Issue 21's promise on a real kubelet: the failed deploy changed the ConfigMap and the
    env-file Secret before its migration failed; the restore puts them back, so the release still
    running, when its container restarts, starts with the previous values, not the new ones."""
    on_the_real_node(stack, namespace)
    inputs = {"secret-name": "app-env", "run-first": "migrate", "settle": "3s"}
    good = deploy(
        "---\n".join([config(DEBUG="false"), real_web(READS_CONFIG), real_migrate(0)]),
        secrets=GOOD_SECRETS,
        **inputs,
    )
    assert good.exit_code == 0, good.log[-4000:]
    old_key = hashlib.sha256(SECRET_VALUE.encode()).hexdigest()[:12]
    read_at_start = f"config: DEBUG=false key={old_key}\n"
    pod, restarts, log = container_runs(stack, namespace)
    assert (restarts, log) == (0, read_at_start)
    assert get(stack, namespace, pod, "{.spec.nodeName}") == node.NODE_NAME

    bad = deploy(
        "---\n".join([config(DEBUG="true"), real_web(READS_CONFIG), real_migrate(3)]),
        secrets=BAD_SECRETS,
        **inputs,
    )
    assert bad.exit_code == 1, bad.log[-4000:]
    assert "migration 0002 exits 3" in bad.log
    assert "Rolled back: configmap/app-config (restored), secret/app-env (restored)." in bad.log

    touched = kubectl(
        stack, "-n", namespace, "exec", pod, "-c", "web", "--", "touch", "/tmp/restart"
    )
    assert touched.returncode == 0, touched.stderr
    deadline = time.monotonic() + 60
    while not ((now := container_runs(stack, namespace))[1] >= 1 and now[2]):
        assert time.monotonic() < deadline, f"the container did not restart: {now}"
        time.sleep(0.5)
    assert now == (pod, 1, read_at_start), "the restarted run did not read the old config"
    # The new values were live for a while (the failed deploy applied them): a container started
    # then would have read them. Control: the same restart with the new values in place reads them.
    kubectl(
        stack,
        "-n",
        namespace,
        "patch",
        "configmap",
        "app-config",
        "-p",
        '{"data":{"DEBUG":"true"}}',
    )
    kubectl(stack, "-n", namespace, "exec", pod, "-c", "web", "--", "touch", "/tmp/restart")
    deadline = time.monotonic() + 60
    while (now := container_runs(stack, namespace))[1] < 2 or "DEBUG=true" not in now[2]:
        assert time.monotonic() < deadline, f"the control restart did not read DEBUG=true: {now}"
        time.sleep(0.5)


def real_workload(kind: str, name: str, say: str, command: str) -> str:
    """A Deployment (1 replica) or StatefulSet (2) for the real node whose container prints
    `say`, then runs `command` (sleep: stays up; exit: crash-loops)."""
    replicas = 2 if kind == "StatefulSet" else 1
    service = f"  serviceName: {name}\n" if kind == "StatefulSet" else ""
    script = f"echo {say}; {command}"
    return (
        f"apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n"
        f"  replicas: {replicas}\n{service}  selector:\n    matchLabels: {{app: {name}}}\n"
        f"  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
        "      terminationGracePeriodSeconds: 1\n      containers:\n"
        f"        - name: {name}\n          image: <IMAGE>\n"
        f"          command: [sh, -c, {json.dumps(script)}]\n"
    )


def test_a_failed_release_is_rolled_back_whole_on_a_real_node_and_the_old_release_really_runs(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    """Whole-release rollback where a real kubelet runs the pods: the failed revision's
    StatefulSet pod really crash-loops (and is Ready for a moment at each start, having no probe),
    and after the rollback every pod runs the previous template on the real node, as its own
    output and kubectl both say."""
    on_the_real_node(stack, namespace)
    inputs = {"settle": "3s"}
    good = deploy(
        "---\n".join(
            [
                real_workload("Deployment", "web", "web good", "sleep 3600"),
                real_workload("StatefulSet", "db", "db good", "sleep 3600"),
            ]
        ),
        **inputs,
    )
    assert good.exit_code == 0, good.log[-4000:]

    bad = deploy(
        "---\n".join(
            [
                real_workload("Deployment", "web", "web bad", "sleep 3600"),
                real_workload("StatefulSet", "db", "db broken", "exit 3"),
            ]
        ),
        **inputs,
        **{"rollback-on-failure": "true"},
    )
    assert bad.exit_code == 1, bad.log[-4000:]
    failed = results(bad)["StatefulSet/db"]
    assert failed["result"] == "failed"
    assert "container `db` is crash-looping: last run exited 3 (Error)" in failed["reason"]
    log = bad.log
    assert "::group::Rollback: the whole release, to what ran before this deploy" in log
    assert "statefulset/db: back to the template of controllerrevision/db-" in log
    state = next(line for line in log.splitlines() if line.startswith("State: "))
    print("\n[rollback, real node] " + state)
    # db-1 is updated first. Being Ready for a moment at each start, it can let the controller
    # move on to db-0 as well (seen on the real node; never on kwok): each is deleted for it.
    assert "statefulset/db: deleted pod db-1: it ran the failed revision" in log
    assert "The restored release is healthy: " in state, state

    # kubectl, the reference peer, agrees at once ...
    for what in ("deployment/web", "statefulset/db"):
        peer = kubectl(stack, "-n", namespace, "rollout", "status", what, "--timeout=5s")
        assert peer.returncode == 0, (what, peer.stderr)
    # ... and every pod there is the previous release, running on the real node, saying so.
    listed = json.loads(kubectl(stack, "-n", namespace, "get", "pods", "-o", "json").stdout)
    pods = [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]
    assert sorted(p["metadata"]["labels"]["app"] for p in pods) == ["db", "db", "web"]
    for p in pods:
        pod, app = p["metadata"]["name"], p["metadata"]["labels"]["app"]
        assert p["spec"]["nodeName"] == node.NODE_NAME, pod
        assert p["status"]["phase"] == "Running", (pod, p["status"])
        out = kubectl(stack, "-n", namespace, "logs", pod, "-c", app)
        assert out.stdout == f"{app} good\n", (pod, out.stdout, out.stderr)
