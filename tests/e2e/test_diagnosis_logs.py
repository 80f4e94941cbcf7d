"""Container logs in the diagnosis, read through the real API server from kwok's kubelet endpoint.

One action run, as the runner runs it, deploys four Deployments that all fail within a second or
two of each other; each pod template names a prepared log (stack/podlogs.py, annotation
`deploy.test/logs`), which kwok serves at the node's address over TLS:

    worker  init container `migrate` fails   migrate-failure (previous run holds a secret)
            (init-crash-loop: it has failed before, so there is a previous run to show)
    web     crash loop                       gunicorn-boot-failure (lines that look like
                                             workflow commands)
    chatty  crash loop                       long (5,000 lines a run, ~600 KB)
    fresh   crash loop                       none: the kubelet has no logs for it (yet)

The tests then read that one run: the log group and the summary against the prepared files,
`kubectl logs [--previous]` against the diagnosis, and the API server's audit log for what the
deployer asked for.

kwok's crash loops have a real kubelet's shape (issue 17): a container is mostly `terminated`
between restarts and runs only for moments. A container that is not running when the diagnosis
reads it shows its "last run" once (the plain log; `--previous` is not asked for); one caught
running again shows its current and previous run. Which of the two the diagnosis met is read from
its log, and each is held to its own expectation.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from deployer.diagnose import diagnose, diagnose_all
from deployer.kube import Cluster
from deployer.results import RolloutResult
from stack import podlogs
from tests.harness.runner import ActionRun, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

TAIL = 50
SECRET = podlogs.SECRET_IN_LOG
OTHER_SECRET = "dj-secret-" + secrets.token_hex(8)
# (deployment, container, kwok behaviour, prepared log or None, init container)
WORKLOADS = (
    ("worker", "migrate", "init-crash-loop", "migrate-failure", True),
    ("web", "web", "crash-loop", "gunicorn-boot-failure", False),
    ("chatty", "chatty", "crash-loop", "long", False),
    ("fresh", "fresh", "crash-loop", None, False),
)
PREFIX = "    | "  # how the diagnosis indents a log line in the Actions log


def manifests() -> str:
    docs = [
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n"
        "data:\n  DJANGO_SETTINGS_MODULE: antisocial.settings\n"
    ]
    for name, container, behavior, log, init in WORKLOADS:
        annotations = f"        deploy.test/behavior: {behavior}\n"
        if log:
            annotations += f"        {podlogs.LOGS_ANNOTATION}: {log}\n"
        inits = ""
        main = container
        if init:
            inits = (
                f"      initContainers:\n        - name: {container}\n          image: <IMAGE>\n"
            )
            main = name
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n"
            f"  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n"
            f"    metadata:\n      labels: {{app: {name}}}\n      annotations:\n{annotations}"
            f"    spec:\n{inits}      containers:\n        - name: {main}\n"
            f"          image: <IMAGE>\n          envFrom:\n"
            f"            - configMapRef: {{name: app-config}}\n"
            f"            - secretRef: {{name: app-secrets}}\n"
        )
    return "---\n".join(docs)


@dataclass(frozen=True)
class Run:
    result: ActionRun
    namespace: str
    pods: dict[str, str]  # deployment -> the pod the diagnosis names
    audit: list[dict[str, Any]]  # the deployer's pod log requests, completed


@pytest.fixture(scope="module")
def run(
    stack: dict[str, str], kube_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    core = client.CoreV1Api(kube_admin)
    namespace = f"t-diagnosis-logs-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        namespace, field_selector="metadata.name=default"
    ).items:
        assert time.monotonic() < deadline, f"namespace {namespace}: no default ServiceAccount"
        time.sleep(0.05)
    workspace = tmp_path_factory.mktemp("diagnosis-logs") / "workspace"
    (workspace / "deploy").mkdir(parents=True)
    (workspace / "Dockerfile").write_text(f"FROM {stack['DJK_BASE_IMAGE']}\nCOPY app.txt /srv/\n")
    (workspace / "app.txt").write_text("the app\n")
    (workspace / "deploy" / "deployment.yaml").write_text(manifests())
    sha = secrets.token_hex(20)
    try:
        result = run_action(
            {
                "image": f"{stack['DJK_REGISTRY']}/djk-e2e/diagnosis-logs",
                "sha": sha,
                "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
                "cluster": stack["DJK_CLUSTER_NAME"],
                "namespace": namespace,
                "registry-username": stack["DJK_REGISTRY_USER"],
                "registry-password": stack["DJK_REGISTRY_PASSWORD"],
                # The password the migrate log quotes back, as a user's env file would hold it.
                "secrets": f"DATABASE_PASSWORD={SECRET}\nSECRET_KEY={OTHER_SECRET}\n",
                "secret-name": "app-secrets",
                "timeout": "2m",
                "build-network": "host",
            },
            workspace,
            extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha},
        )
        if result.outputs.get("deployments"):
            # Time from apply to each verdict, for `pytest -s`: all must fall within the 5 s
            # failure grace of the first, or the later ones end up "cancelled".
            verdicts = ", ".join(
                f"{d['name']} {d['result']} {d['duration_seconds']}s"
                for d in json.loads(result.outputs["deployments"])
            )
            print(f"\n[verdicts] exit {result.exit_code}: {verdicts}")
        pods = {}
        for name, *_ in WORKLOADS:
            found = re.search(rf"^\s*pod ({name}-[a-z0-9]+-[a-z0-9]+),", result.visible_log, re.M)
            assert found, f"no pod named in the diagnosis of {name}:\n{result.visible_log[-4000:]}"
            pods[name] = found.group(1)
        yield Run(result, namespace, pods, _deployer_log_requests(stack, namespace))
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")


def _deployer_log_requests(stack: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    """Pod log requests in `namespace` that the deployer made (not kubectl), once complete."""
    entries = []
    for line in Path(stack["DJK_AUDIT_LOG"]).read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (
            entry.get("stage") == "ResponseComplete"
            and ref.get("namespace") == namespace
            and ref.get("subresource") == "log"
            and not str(entry.get("userAgent", "")).startswith("kubectl/")
        ):
            entries.append(entry)
    return entries


# -- reading the run --------------------------------------------------------------------------


def shown(log: str, container: str) -> dict[str, list[str] | str]:
    """The runs the diagnosis shows for `container`: {"last"} or {"current", "previous"}."""
    found = {
        run: excerpt(log, container, run)
        for run in ("last", "current", "previous")
        if f"logs of `{container}`, {run} run" in log
    }
    assert set(found) in ({"last"}, {"current", "previous"}), (container, set(found))
    return found


def reads(run: str) -> bool:
    """Whether a shown run is the `--previous` read (else the plain one)."""
    return run == "previous"


def excerpt(log: str, container: str, run: str) -> list[str] | str:
    """The log lines the diagnosis shows for one run of `container`, or its one-line note."""
    lines = log.splitlines()
    header = f"logs of `{container}`, {run} run"
    for i, line in enumerate(lines):
        text = line.strip()
        if not text.startswith(header):
            continue
        counted = re.fullmatch(re.escape(header) + r" \(last (\d+) lines\):", text)
        if counted is None:
            return text
        body = lines[i + 1 : i + 1 + int(counted.group(1))]
        assert all(b.startswith(PREFIX) for b in body), body
        return [b[len(PREFIX) :] for b in body]
    raise AssertionError(f"no `{header}` in the log")


def summary_block(summary: str, container: str, run: str) -> list[str]:
    """The fenced log lines under the summary's <details> for one run of `container`."""
    title = f"logs of <code>{container}</code>, {run} run"
    start = summary.index(title)
    fence = re.compile(r"^(`{3,})text$", re.M).search(summary, start)
    assert fence is not None
    end = summary.index("\n" + fence.group(1) + "\n", fence.end())
    return summary[fence.end() + 1 : end].split("\n")


def masked(lines: list[str]) -> list[str]:
    return [line.replace(SECRET, "***") for line in lines]


def expected(log: str, *, previous: bool) -> list[str]:
    return podlogs.lines(log, previous=previous)[-TAIL:]


def kubectl_logs(stack: dict[str, str], run: Run, name: str, container: str, *flags: str) -> str:
    done = subprocess.run(
        [
            *("kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", run.namespace, "logs"),
            *(run.pods[name], "-c", container, f"--tail={TAIL}", *flags),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def query(entry: dict[str, Any]) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(entry["requestURI"]).query))


# -- the tests --------------------------------------------------------------------------------


def test_every_failing_workload_is_red_with_its_own_reason(run: Run) -> None:
    assert run.result.exit_code == 1, run.result.log[-3000:]
    results = {d["name"]: d for d in json.loads(run.result.outputs["deployments"])}
    # All four failed on their own (none was cut short as "cancelled" by another's failure).
    assert {name: results[name]["result"] for name, *_ in WORKLOADS} == dict.fromkeys(
        (name for name, *_ in WORKLOADS), "failed"
    )
    assert "init container `migrate` exited 1" in results["worker"]["reason"]
    for name in ("web", "chatty", "fresh"):
        assert f"container `{name}` is crash-looping" in results[name]["reason"]


@pytest.mark.parametrize(
    ("name", "container", "log"),
    [("worker", "migrate", "migrate-failure"), ("web", "web", "gunicorn-boot-failure")],
    ids=["failing-migrate", "crash-looping-web"],
)
def test_the_last_50_lines_of_each_shown_run_are_in_the_log_group_and_the_summary(
    run: Run, name: str, container: str, log: str
) -> None:
    runs = shown(run.result.visible_log, container)
    for which, lines in runs.items():
        want = masked(expected(log, previous=reads(which)))
        assert len(want) == TAIL
        assert lines == want, which
        assert summary_block(run.result.summary, container, which) == want
    if "current" in runs:
        # The two runs are told apart (the prepared runs differ in their last line).
        assert runs["current"] != runs["previous"]


def test_the_secret_in_a_log_line_is_masked_everywhere(run: Run) -> None:
    for which, lines in shown(run.result.visible_log, "migrate").items():
        quoted = [
            line for line in expected("migrate-failure", previous=reads(which)) if SECRET in line
        ]
        assert quoted, "the prepared log must quote the secret in its last 50 lines"
        assert masked(quoted)[0] in lines
    result = run.result
    everything = result.visible_log + json.dumps(result.outputs) + result.summary
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in everything
        # In the raw log only the runner's mask registrations hold it.
        for line in result.log.splitlines():
            if secret in line:
                assert line.startswith("::add-mask::"), line


def test_kubectl_logs_agrees_with_the_diagnosis(stack: dict[str, str], run: Run) -> None:
    for name, container, _, log, _ in WORKLOADS[:3]:
        assert log is not None
        for which, lines in shown(run.result.visible_log, container).items():
            flags = ("--previous",) if reads(which) else ()
            theirs = kubectl_logs(stack, run, name, container, *flags).splitlines()
            assert theirs == expected(log, previous=reads(which))
            assert lines == masked(theirs)


def test_kubectl_gets_the_same_answer_for_logs_that_are_not_there(
    stack: dict[str, str], run: Run
) -> None:
    for which, note in shown(run.result.visible_log, "fresh").items():
        flags = ("--previous",) if reads(which) else ()
        done = subprocess.run(
            [
                *("kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", run.namespace, "logs"),
                *(run.pods["fresh"], "-c", "fresh", f"--tail={TAIL}", *flags),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        theirs = done.stderr.strip().removeprefix("Error from server (BadRequest): ")
        assert theirs.startswith('no logs found for container "fresh"')
        assert isinstance(note, str) and note.endswith(": " + theirs)


def test_lines_that_look_like_workflow_commands_stay_text(run: Run) -> None:
    runs = shown(run.result.visible_log, "web")
    which = "last" if "last" in runs else "current"
    hostile = [line for line in expected("gunicorn-boot-failure", previous=False) if "::" in line]
    assert any(line.startswith("::error") for line in hostile)
    assert any(line.startswith("::stop-commands::") for line in hostile)
    lines = runs[which]
    assert isinstance(lines, list)
    for line in hostile:
        assert line in lines  # shown, verbatim, as a log line
    # Parsed the way the runner parses the log: none of them became a command.
    for command in run.result.commands:
        assert "app-log-token" not in command.data, command
        assert "ignore the red" not in command.data, command
        assert command.name != "add-mask" or command.data != "Worker", command
    # The mask it tried to add did nothing: "Worker" is still readable after it.
    after = lines[lines.index("::add-mask::Worker") + 1 :]
    assert "[2026-12-04 09:14:19 +0000] [1] [ERROR] Reason: Worker failed to boot." in after


def test_a_5000_line_log_is_cut_to_its_tail_by_the_request(stack: dict[str, str], run: Run) -> None:
    size = len("\n".join(podlogs.lines("long")).encode())
    assert size > 256 * 1024  # more than the deployer's limitBytes: a head read would differ
    runs = shown(run.result.visible_log, "chatty")
    for which, lines in runs.items():
        assert lines == expected("long", previous=reads(which))
    # The API server saw a tail request (so kwok read only the tail), for each shown run.
    asked = [query(e) for e in run.audit if e["objectRef"]["name"] == run.pods["chatty"]]
    assert sorted(q.get("previous", "false") for q in asked) == sorted(
        "true" if reads(which) else "false" for which in runs
    )
    for q in asked:
        assert q["container"] == "chatty"
        assert q["tailLines"] == str(TAIL)


def test_logs_that_are_not_there_yet_are_one_line_and_asked_for_once(run: Run) -> None:
    runs = shown(run.result.visible_log, "fresh")
    for which, note in runs.items():
        assert isinstance(note, str), note
        assert note.startswith(f"logs of `fresh`, {which} run: logs unavailable: ")
        assert 'no logs found for container "fresh"' in note
    # Asked once per shown run, answered at once (400), not retried or waited for; a run that
    # ended is never asked for with --previous.
    asked = [e for e in run.audit if e["objectRef"]["name"] == run.pods["fresh"]]
    assert sorted(query(e).get("previous", "false") for e in asked) == sorted(
        "true" if reads(which) else "false" for which in runs
    )
    assert {e["responseStatus"]["code"] for e in asked} == {400}
    # The verdict is the crash loop's, unchanged by the missing logs.
    fresh = {d["name"]: d for d in json.loads(run.result.outputs["deployments"])}["fresh"]
    assert fresh["result"] == "failed"


def test_every_log_request_asks_for_a_tail_of_one_container(run: Run) -> None:
    assert run.audit
    for entry in run.audit:
        q = query(entry)
        assert q["tailLines"] == str(TAIL), entry["requestURI"]
        assert q.get("container"), entry["requestURI"]


def test_diagnosis_time_per_failing_workload(stack: dict[str, str], run: Run) -> None:
    """What diagnosing costs on the stack, printed for `pytest -s`: the deployer's diagnose()
    in-process against the same cluster for each failed workload (pods, ReplicaSets, events,
    both runs' logs), the diagnosis phase for all four at once (diagnose_all, as the pipeline
    runs it), and the span of the action's own log requests in the audit log."""
    since = datetime.now(UTC) - timedelta(minutes=5)
    with Cluster.from_kubeconfig_file(stack["KUBECONFIG"]) as cluster:
        failed = []
        for name, container, _, log, _ in WORKLOADS:
            deployment = cluster.get_deployment(name, run.namespace)
            assert deployment is not None
            began = time.perf_counter()
            diagnosis = diagnose(cluster, deployment, since, None)
            took = time.perf_counter() - began
            assert diagnosis.container == container
            current = diagnosis.logs[0]
            if log is None:
                assert not current.lines and "no logs found" in current.note
            else:
                assert list(current.lines) == expected(log, previous=False)
            entries = [e for e in run.audit if e["objectRef"]["name"] == run.pods[name]]
            span = max(_time(e["stageTimestamp"]) for e in entries) - min(
                _time(e["requestReceivedTimestamp"]) for e in entries
            )
            print(
                f"\n[diagnosis] deployment/{name}: diagnose() {took:.3f}s; "
                f"the action's {len(entries)} log requests spanned {span.total_seconds():.3f}s"
            )
            failed.append(
                RolloutResult(name, run.namespace, "failed", "red", 0.0, last_seen=deployment)
            )
        began = time.perf_counter()
        diagnosed = diagnose_all(cluster, failed, since)
        took = time.perf_counter() - began
    assert all(r.diagnosis is not None and r.diagnosis.logs for r in diagnosed)
    print(f"[diagnosis] the phase, all {len(diagnosed)} at once (diagnose_all): {took:.3f}s")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
