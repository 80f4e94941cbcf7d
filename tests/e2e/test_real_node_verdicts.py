"""Every verdict we promise, through the action container on the stack's REAL node (issue 17).

A real kubelet (containerd, runc) runs the pods: the image (`tests/harness/real_node.py`'s static
`probe`) is pulled from the stack's registry with a pull secret, as a user's cluster pulls an app
image, and the action deploys it with `build: never` and its default settle window (10 s). Each
case is one action run in a namespace of its own (`verdicts-<case>-…`, put on the real node by
its annotations); all run at once in a thread pool, because the slow ones wait for the kubelet's
real back-offs (a crash loop is red at its second restart, 10 s of back-off after the first).

Each red is held to what the README promises: exit code 1, the pod, the container, the reason and
the container's real log lines (or that it printed none) — and `kubectl logs` of that container,
read right after the run, agrees with what is shown. The green cases are checked against
`kubectl rollout status --timeout=1s`: kubectl must agree at once. The cases include each row of
issue 17's table of false greens, which are red now (with `settle: 0`, kubectl's done, the first
row is green again and its test fails).

This module fails (never skips) when the stack has no real node.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.status import PULL_REFUSAL_GRACE_S
from tests.e2e.support import stack_env, stack_inputs, workspace_with
from tests.harness import real_node
from tests.harness.real_node import container, deployment, job, tcp_probe
from tests.harness.runner import ActionRun, build_action_image, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

TAIL = 50
PREFIX = "    | "  # how the diagnosis indents a log line in the Actions log
LOOPING = ("Error", "CrashLoopBackOff")
MISSING_IMAGE = "verdicts/no-such-image:1.0"  # a repository of the stack's registry, never pushed

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/board/tasks.py", line 3, in <module>\n'
    "    raise RuntimeError('broken commit')\n"
    "RuntimeError: broken commit"
)
MIGRATION = (
    "Operations to perform:\n"
    "  Apply all migrations: admin, auth, board, contenttypes, sessions\n"
    "Running migrations:\n"
    "  Applying board.0002_post_author...\n"
    'django.db.utils.ProgrammingError: column "author_id" of relation "board_post" already exists'
)


# -- manifests --------------------------------------------------------------------------------


def yaml_docs(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


# -- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One action run. For a red: the workload (`kind/name` prefix of the outputs' key), the
    container the diagnosis must name, text its reason must hold, and the log lines the
    container prints (None: it never starts, so there are none)."""

    name: str
    docs: tuple[dict[str, Any], ...]
    workload: str = ""
    container: str = ""
    init: bool = False
    reason: tuple[str, ...] = ()
    log: str | None = None  # "": it ran (the runtime tried) and printed nothing
    shows: tuple[str, ...] = ()  # the kubelet's or scheduler's own words, in the diagnosis
    # The reason in the diagnosis's "pod …, container …: <state>" line: one of these (a crash
    # loop is seen between restarts, terminated, or in the short waiting window).
    state: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)
    pull_secret: bool = True  # the namespace's default ServiceAccount names the pull secret
    # A secret the default ServiceAccount names though it is not made (our preflight refuses a
    # manifest naming a missing one, but not a ServiceAccount, which DOKS's integration fills).
    named_secret: str = ""
    # Make that secret only once the kubelet was refused without it.
    secret_after_refusal: bool = False
    config_map: dict[str, str] | None = None  # made in the cluster before the run
    green: tuple[str, ...] = ()  # for a green run: the Deployments kubectl must call done


def cases(registry: str) -> list[Case]:
    missing = f"{registry}/{MISSING_IMAGE}"
    broken = ["say", "broken commit", "3"]
    return [
        Case(
            "green",
            (
                deployment(
                    "web",
                    [container("web", ["serve", "8080"], readinessProbe=tcp_probe(8080))],
                    replicas=2,
                ),
                deployment("worker", [container("worker", ["say", "celery ready", "0", "3600"])]),
            ),
            green=("web", "worker"),
        ),
        # The restart tolerance's purpose: a worker that crashes once while its broker starts, then
        # stays up, is green (its window starts again at the restart).
        Case(
            "crashes-once",
            (
                deployment(
                    "worker",
                    [
                        container(
                            "worker",
                            ["once", "/state/started"],
                            volumeMounts=[{"name": "state", "mountPath": "/state"}],
                        )
                    ],
                    volumes=[{"name": "state", "emptyDir": {}}],
                ),
            ),
            green=("worker",),
        ),
        Case(
            "crash-loop",
            (
                deployment(
                    "web",
                    [container("web", ["say", TRACEBACK, "1"], readinessProbe=tcp_probe(8080))],
                ),
            ),
            workload="Deployment/web",
            container="web",
            reason=("container `web` is crash-looping: last run exited 1 (Error), restarted",),
            log=TRACEBACK,
            state=LOOPING,
        ),
        Case(
            "image-not-found",
            (
                deployment(
                    "web",
                    [
                        container("web", ["serve", "8080"]),
                        {"name": "proxy", "image": missing, "args": ["serve", "8081"]},
                    ],
                ),
            ),
            workload="Deployment/web",
            container="proxy",
            reason=(f"container `proxy` cannot pull {missing}: image not found (",),
            shows=(f"failed to resolve image: {missing}: not found",),
            state=("ErrImagePull", "ImagePullBackOff"),
        ),
        Case(
            "no-credentials",
            (deployment("web", [container("web", ["serve", "8080"])]),),
            workload="Deployment/web",
            container="web",
            reason=(
                "cannot pull",
                ": pull access denied, no credentials (",
                "the pod has no pull secret this registry accepts",
            ),
            shows=("authorization failed: no basic auth credentials",),
            state=("ErrImagePull", "ImagePullBackOff"),
            pull_secret=False,
        ),
        # A pod naming a pull secret the kubelet cannot read yet is pulled without it and
        # refused, then pulled with it once it can (seen in CI, 15 namespaces starting at once:
        # the kubelet's secret cache lagged). Here the secret appears after the refusal; the
        # pod names it through its ServiceAccount, as on DOKS.
        Case(
            "pull-secret-late",
            (
                deployment(
                    "web", [container("web", ["serve", "8080"], readinessProbe=tcp_probe(8080))]
                ),
            ),
            green=("web",),
            pull_secret=False,
            named_secret=real_node.PULL_SECRET,
            secret_after_refusal=True,
        ),
        # …and one that never appears: red once the refusals outlast the kubelet's retry.
        Case(
            "pull-secret-missing",
            (deployment("web", [container("web", ["serve", "8080"])]),),
            workload="Deployment/web",
            container="web",
            reason=(
                ": pull access denied, no credentials (",
                f"refused for {PULL_REFUSAL_GRACE_S:g}s despite the pod's imagePullSecrets "
                "(registry-missing)",
            ),
            shows=("authorization failed: no basic auth credentials",),
            state=("ErrImagePull", "ImagePullBackOff"),
            pull_secret=False,
            named_secret="registry-missing",
        ),
        Case(
            "migrate-job",
            (
                job("migrate", [container("migrate", ["say", MIGRATION, "1"])]),
                deployment("web", [container("web", ["serve", "8080"])]),
            ),
            workload="Job/migrate",
            container="migrate",
            reason=("container `migrate` exited 1 (Error)",),
            log=MIGRATION,
            inputs={"run-first": "migrate"},
        ),
        Case(
            "init-fail",
            (
                deployment(
                    "worker",
                    [container("worker", ["say", "celery ready", "0", "3600"])],
                    init=[container("migrate", ["say", MIGRATION, "1"])],
                ),
            ),
            workload="Deployment/worker",
            container="migrate",
            init=True,
            reason=("init container `migrate` exited 1 (Error)",),
            log=MIGRATION,
            state=("Error",),
        ),
        Case(
            "oom",
            (
                deployment(
                    "worker",
                    [
                        container(
                            "worker",
                            ["alloc", "200"],
                            resources={
                                "requests": {"memory": "50Mi"},
                                "limits": {"memory": "50Mi"},
                            },
                        )
                    ],
                ),
            ),
            workload="Deployment/worker",
            container="worker",
            reason=("container `worker`", "OOMKilled at its memory limit of 50Mi (exit 137)"),
            log="allocating 200 MiB",
            state=("OOMKilled", "CrashLoopBackOff"),
        ),
        Case(
            "never-ready",
            (
                deployment(
                    "web",
                    [container("web", ["serve", "8080"], readinessProbe=tcp_probe(8081))],
                    progress_deadline_s=15,
                ),
            ),
            workload="Deployment/web",
            container="web",
            reason=("exceeded its progress deadline of 15s",),
            shows=("Readiness probe failed: dial tcp ", ":8081: connect: connection refused"),
            log="serving on port 8080",
            state=("NotReady",),
        ),
        Case(
            "configmap-key",
            (
                deployment(
                    "web",
                    [
                        container(
                            "web",
                            ["serve", "8080"],
                            env=[
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {
                                        "configMapKeyRef": {
                                            "name": "app-config",
                                            "key": "DATABASE_URL",
                                        }
                                    },
                                }
                            ],
                        )
                    ],
                ),
            ),
            workload="Deployment/web",
            container="web",
            reason=(
                "container `web` cannot be created: couldn't find key DATABASE_URL in ConfigMap ",
            ),
            state=("CreateContainerConfigError",),
            config_map={"DJANGO_SETTINGS_MODULE": "antisocial.settings"},
        ),
        Case(
            "unschedulable",
            (
                deployment(
                    "web",
                    [container("web", ["serve", "8080"], resources={"requests": {"cpu": "4000"}})],
                ),
            ),
            workload="Deployment/web",
            reason=("cannot be scheduled for 10s: 0/", "Insufficient cpu"),
            shows=("FailedScheduling",),
        ),
        # The most common broken Django image: an entrypoint that is not there (or run.sh without
        # its execute bit). The runtime's first answer is final.
        Case(
            "no-entrypoint",
            (deployment("web", [container("web", [], command=["/app/run.sh"])]),),
            workload="Deployment/web",
            container="web",
            reason=(
                "container `web` cannot start: the runtime cannot run its command (",
                'exec: "/app/run.sh": stat /app/run.sh: no such file or directory',
            ),
            log="",
            state=("RunContainerError", "StartError"),
        ),
        # Issue 17's table of false greens: no readiness probe unless stated.
        Case(
            "exits-at-once",
            (deployment("worker", [container("worker", broken)], replicas=2),),
            workload="Deployment/worker",
            container="worker",
            reason=("container `worker` is crash-looping: last run exited 3 (Error), restarted",),
            log="broken commit",
            state=LOOPING,
        ),
        Case(
            "exits-after-3s",
            (deployment("worker", [container("worker", [*broken, "3"])]),),
            workload="Deployment/worker",
            container="worker",
            reason=("container `worker` is crash-looping: last run exited 3 (Error), restarted",),
            log="broken commit",
            state=LOOPING,
        ),
        Case(
            "exits-after-2s-never-ready",
            (
                deployment(
                    "web", [container("web", [*broken, "2"], readinessProbe=tcp_probe(8080))]
                ),
            ),
            workload="Deployment/web",
            container="web",
            reason=("container `web` is crash-looping: last run exited 3 (Error), restarted",),
            log="broken commit",
            state=LOOPING,
        ),
    ]


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Played:
    """One case's run and what kubectl said right after it."""

    case: Case
    namespace: str
    result: ActionRun | None = None
    error: str = ""
    wall_s: float = 0.0
    pod: str = ""
    where: str = ""  # the diagnosis's "pod …, container …: …" line
    kubectl_logs: subprocess.CompletedProcess[str] | None = None
    kubectl_plain_logs: subprocess.CompletedProcess[str] | None = None
    rollout_status: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    restarts: str = ""  # of a green run's containers, as kubectl shows them after the run
    refused_first: str = ""  # `secret_after_refusal`: the pull state seen before the secret


def kubectl(stack: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl against the stack; its exit code is the caller's to read."""
    return real_node.kubectl(stack, *args, check=False)


def where_line(log: str, case: Case) -> tuple[str, str] | None:
    """The pod the diagnosis names for the case's workload, and its where-line."""
    prefix = case.workload.split("/")[1]
    kind = "init container" if case.init else "container"
    pattern = rf"^\s*(pod ({re.escape(prefix)}-[a-z0-9-]+)(?:, {kind} `[^`]+`)?(?:: .*)?)$"
    found = re.search(pattern, log, re.M)
    return (found.group(2), found.group(1)) if found else None


def container_log(
    stack: dict[str, str], namespace: str, pod: str, container: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl logs` of one container. A container the kubelet has just restarted may not have
    printed yet: its empty log is read again (a few times, half a second apart)."""
    for _ in range(6):
        done = kubectl(stack, "-n", namespace, "logs", pod, "-c", container, f"--tail={TAIL}")
        if done.returncode != 0 or done.stdout:
            break
        time.sleep(0.5)
    return done


def secret_after_refusal(played: Played, stack: dict[str, str], within_s: float = 120) -> None:
    """Once a pod of the namespace shows a refused pull, make the pull secret it names."""
    deadline = time.monotonic() + within_s
    jsonpath = "jsonpath={.items[*].status.containerStatuses[*].state.waiting.reason}"
    while time.monotonic() < deadline:
        shown = kubectl(stack, "-n", played.namespace, "get", "pods", "-o", jsonpath).stdout
        refused = [r for r in shown.split() if r in ("ErrImagePull", "ImagePullBackOff")]
        if refused:
            played.refused_first = refused[0]
            real_node.make_pull_secret(stack, played.namespace)
            return
        time.sleep(0.2)


def play(case: Case, stack: dict[str, str], image: str, root: Path) -> Played:
    """One case's run; what goes wrong is kept in the result (its namespace is cleaned up)."""
    played = Played(case, real_node.namespace_name("verdicts", case.name))
    try:
        _play(played, stack, image, root)
    except Exception as exc:  # reported by each test of the case, after every case has run
        played.error = f"{type(exc).__name__}: {exc}"
    return played


def _play(played: Played, stack: dict[str, str], image: str, root: Path) -> None:
    case = played.case
    real_node.place_namespace(stack, played.namespace, pull_secret=case.pull_secret)
    if case.named_secret:
        real_node.name_pull_secret(stack, played.namespace, case.named_secret)
    if case.config_map is not None:
        made = kubectl(
            stack,
            *("-n", played.namespace, "create", "configmap", "app-config"),
            *(f"--from-literal={k}={v}" for k, v in case.config_map.items()),
        )
        assert made.returncode == 0, made.stderr
    workspace = workspace_with(root / case.name, yaml_docs(*case.docs))
    inputs = stack_inputs(
        stack, image=image, sha=real_node.PROBE_SHA, namespace=played.namespace, build="never"
    )
    inputs.pop("settle")  # the action's default (10 s), as a user's deploy has it
    inputs.pop("build-network")
    inputs.update({"timeout": "3m", **case.inputs})
    started = time.monotonic()
    late_secret = None
    if case.secret_after_refusal:
        late_secret = threading.Thread(target=secret_after_refusal, args=(played, stack))
        late_secret.start()
    try:
        played.result = run_action(
            inputs,
            workspace,
            stack=stack,
            extra_env=stack_env(stack, real_node.PROBE_SHA),
            timeout=420,
        )
    finally:
        if late_secret is not None:
            late_secret.join()
    played.wall_s = time.monotonic() - started
    (root / f"{case.name}.log").write_text(played.result.visible_log)
    ns = ("-n", played.namespace)
    # kubectl, right after the verdict: the same cluster, the same moment.
    for name in case.green:
        played.rollout_status[name] = kubectl(
            stack, *ns, "rollout", "status", f"deployment/{name}", "--timeout=1s"
        )
    if case.green:
        played.restarts = kubectl(
            stack,
            *ns,
            *("get", "pods", "-o", "jsonpath={.items[*].status.containerStatuses[*].restartCount}"),
        ).stdout
    found = where_line(played.result.visible_log, case) if case.workload else None
    if found is not None:
        played.pod, played.where = found
        if case.container:
            played.kubectl_logs = container_log(stack, played.namespace, played.pod, case.container)
        if case.init:
            played.kubectl_plain_logs = kubectl(stack, *ns, "logs", played.pod)


@pytest.fixture(scope="module")
def real_stack(stack: dict[str, str]) -> dict[str, str]:
    """The session's stack, which must run the real node (no silent kwok-only fallback)."""
    return real_node.require(stack)


@pytest.fixture(scope="module")
def played(
    real_stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Played]]:
    """Every case, played at once (one action container and one namespace each)."""
    stack = real_stack
    image = real_node.push_probe(stack)
    build_action_image(stack=stack)  # once, before the runs share it
    root = tmp_path_factory.mktemp("real-node-verdicts")
    all_cases = cases(stack["DJK_REGISTRY"])
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(all_cases)) as pool:
        futures = {c.name: pool.submit(play, c, stack, image, root) for c in all_cases}
    wall = time.monotonic() - started
    runs = {name: future.result() for name, future in futures.items()}
    print(
        f"\n[real-node verdicts] {len(runs)} action runs at once: {wall:.1f}s wall; logs in {root}"
    )
    for name, p in runs.items():
        if p.result is None or p.error:
            print(f"  {name:28} ERROR {p.error}")
            continue
        verdicts = ", ".join(
            f"{d['kind']}/{d['name']} {d['result']} {d['duration_seconds']}s"
            for d in json.loads(p.result.outputs.get("deployments") or "[]")
        )
        print(f"  {name:28} exit {p.result.exit_code} in {p.wall_s:5.1f}s: {verdicts}")
    try:
        yield runs
    finally:
        for p in runs.values():
            real_node.delete_namespace(stack, p.namespace)


# -- reading a run ----------------------------------------------------------------------------


def outcome(p: Played) -> dict[str, Any]:
    assert p.result is not None and not p.error, p.error
    everything: list[dict[str, Any]] = json.loads(p.result.outputs["deployments"])
    [found] = [d for d in everything if f"{d['kind']}/{d['name']}".startswith(p.case.workload)]
    return found


def shown_lines(log: str, container: str) -> list[str]:
    """The log lines the diagnosis shows for `container` (its first excerpt with lines)."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        counted = re.fullmatch(
            rf"logs of `{re.escape(container)}`, [a-z ()]+ \(last (\d+) lines\):", line.strip()
        )
        if counted:
            body = lines[i + 1 : i + 1 + int(counted.group(1))]
            assert all(b.startswith(PREFIX) for b in body), body
            return [b[len(PREFIX) :] for b in body]
    raise AssertionError(f"no log lines of `{container}` shown:\n{log[-3000:]}")


def excerpt_notes(log: str, container: str) -> list[str]:
    """The one-line notes the diagnosis gives instead of log lines for `container`."""
    return re.findall(rf"^\s*logs of `{re.escape(container)}`, [a-z ]+ run: (.+)$", log, re.M)


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["green", "crashes-once", "pull-secret-late"])
def test_a_green_deploy_on_the_real_node_is_green_and_kubectl_agrees_at_once(
    played: dict[str, Played], name: str
) -> None:
    p = played[name]
    assert p.result is not None and not p.error, p.error
    assert p.result.exit_code == 0, p.result.visible_log[-4000:]
    results = {d["name"]: d for d in json.loads(p.result.outputs["deployments"])}
    assert {n: (results[n]["result"], results[n]["reason"]) for n in p.case.green} == dict.fromkeys(
        p.case.green, ("succeeded", "successfully rolled out")
    )
    for workload, status in p.rollout_status.items():
        assert status.returncode == 0, (workload, status.stderr)
        assert f'deployment "{workload}" successfully rolled out' in status.stdout
    if name == "crashes-once":
        # It did crash once (the first restart is immediate on a real kubelet), and it was
        # judged after that restart, not before.
        assert p.restarts == "1", p.restarts
    if name == "pull-secret-late":
        # It was refused first (the secret came after), and the verdict waited for the retry.
        assert p.refused_first in ("ErrImagePull", "ImagePullBackOff"), p.refused_first


RED = [
    "crash-loop",
    "no-entrypoint",
    "image-not-found",
    "no-credentials",
    "pull-secret-missing",
    "migrate-job",
    "init-fail",
    "oom",
    "never-ready",
    "configmap-key",
    "unschedulable",
    "exits-at-once",
    "exits-after-3s",
    "exits-after-2s-never-ready",
]


@pytest.mark.parametrize("name", RED)
def test_a_red_names_pod_container_reason_and_real_logs_and_kubectl_logs_agrees(
    played: dict[str, Played], name: str
) -> None:
    p = played[name]
    assert p.result is not None and not p.error, p.error
    log = p.result.visible_log
    assert p.result.exit_code == 1, log[-4000:]
    verdict = outcome(p)
    assert verdict["result"] == "failed", verdict
    for text in p.case.reason:
        assert text in verdict["reason"], (text, verdict["reason"])
    for text in p.case.shows:
        assert text in log, (text, log[-4000:])
    # The pod, named in the verdict and in the diagnosis.
    assert p.pod, f"no pod named in the diagnosis:\n{log[-4000:]}"
    if "[pod " in verdict["reason"]:
        assert verdict["reason"].endswith(f"[pod {p.pod}]"), verdict["reason"]
    if not p.case.container:
        # Never scheduled: no container ran, the scheduler's words are the reason.
        assert p.where.startswith(f"pod {p.pod}"), p.where
        return
    kind = "init container" if p.case.init else "container"
    assert p.where.startswith(f"pod {p.pod}, {kind} `{p.case.container}`"), p.where
    if p.case.state:
        assert any(f": {state}" in p.where for state in p.case.state), p.where
    theirs = p.kubectl_logs
    assert theirs is not None
    if p.case.log is None:
        # It never started: no logs, and kubectl says the same.
        note = excerpt_notes(log, p.case.container)[0]
        assert note.startswith("no logs: the container never started"), note
        assert theirs.returncode == 1, theirs.stdout
        assert f'container "{p.case.container}" in pod "{p.pod}" is waiting to start' in (
            theirs.stderr
        )
        return
    if not p.case.log:
        # The runtime could not start it: a run with no output, and kubectl reads it so too.
        assert excerpt_notes(log, p.case.container) == ["no output"], log[-3000:]
        assert (theirs.returncode, theirs.stdout) == (0, ""), theirs.stderr
        return
    shown = shown_lines(log, p.case.container)
    assert shown == p.case.log.splitlines()
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.splitlines() == shown
    if p.case.init:
        # The app container never started: its plain log is refused, read by name it is not.
        plain = p.kubectl_plain_logs
        assert plain is not None
        assert plain.returncode == 1
        assert "is waiting to start: PodInitializing" in plain.stderr


def test_a_failed_migration_applies_nothing_else(played: dict[str, Played]) -> None:
    p = played["migrate-job"]
    assert p.result is not None and not p.error, p.error
    assert "applied deployment/web" not in p.result.log
    assert "Deployment/web" not in {
        f"{d['kind']}/{d['name']}" for d in json.loads(p.result.outputs["deployments"])
    }
