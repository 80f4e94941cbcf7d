"""The report: outcomes in, log lines, annotations, outputs and summary out; one emitter."""

from __future__ import annotations

import io
import json
from pathlib import Path

from deployer import report
from deployer.errors import Cancelled, InputError, RolloutFailed
from deployer.github import Reporter
from deployer.kube import ApiUnavailable, Applied, Forbidden
from deployer.report import Annotation, DeployFacts
from deployer.results import RolloutResult

WEB_GREEN = RolloutResult("web", "shop", "succeeded", "successfully rolled out", 0.61)
WORKER_RED = RolloutResult(
    "worker", "shop", "failed", "init container `migrate` exited 1 (Error) [pod w-1]", 2.04
)


def applied(kind: str, name: str) -> Applied:
    return Applied(kind, name, "shop", 1, f"uid-{name}")


def test_a_few_objects_are_named_and_many_of_one_kind_are_counted() -> None:
    few = [applied("ConfigMap", "app-config"), applied("Deployment", "web")]
    assert report.by_kind(few) == "configmap/app-config, deployment/web"
    many = (
        [applied("ConfigMap", f"c{i}") for i in range(480)]
        + [applied("Deployment", f"d{i}") for i in range(20)]
        + [applied("Service", "web")]
    )
    assert report.by_kind(many) == "480 configmaps, 20 deployments, service/web"
    facts = DeployFacts("img", "", "watch", applied=many, results=[WEB_GREEN])
    assert report.state_line(facts) == (
        "State: applied 501 object(s): 480 configmaps, 20 deployments, service/web. "
        "Rollouts: deployment/web succeeded."
    )


def test_each_verdict_is_one_line_with_its_time_and_reason() -> None:
    assert report.verdict_line(WEB_GREEN) == (
        "deployment/web: succeeded after 0.6s: successfully rolled out"
    )
    assert report.verdict_line(WORKER_RED).startswith("deployment/worker: failed after 2.0s: init")


def test_the_same_error_gets_the_same_title_wherever_it_is_reported() -> None:
    unavailable = ApiUnavailable("cannot reach https://k8s after retries: refused")
    from_pipeline = report.of_deploy(DeployFacts("img", "", "credentials", error=unavailable))
    from_cli = report.of_error(unavailable)
    assert (
        from_pipeline.annotations
        == from_cli.annotations
        == (Annotation("error", f"{unavailable}", "Service unavailable"),)
    )
    assert report.title_of(Forbidden("may not")) == "Invalid input"
    assert report.title_of(Cancelled("cancelled")) == "Cancelled"


def test_an_input_error_with_a_file_is_annotated_at_its_line_without_repeating_it() -> None:
    error = InputError("invalid YAML", file="deploy/deployment.yaml", line=20, hint="Fix it.")
    [annotation] = report.of_error(error).annotations
    assert annotation == Annotation(
        "error", "invalid YAML. Fix it.", "Invalid input", "deploy/deployment.yaml", 20
    )


def test_a_red_deploy_reports_each_failed_rollout_once_and_the_state_left() -> None:
    facts = DeployFacts(
        "reg/app:1",
        "sha256:abc",
        "watch",
        applied=[applied("Deployment", "web"), applied("Deployment", "worker")],
        results=[WEB_GREEN, WORKER_RED],
        error=RolloutFailed(report.failure_line([WEB_GREEN, WORKER_RED])),
    )
    got = report.of_deploy(facts)
    assert got.annotations == (
        Annotation("error", f"deployment/worker: {WORKER_RED.reason}", "Rollout failed"),
    )
    assert got.lines == (
        "State: applied 2 object(s): deployment/web, deployment/worker. "
        "Rollouts: deployment/web succeeded; deployment/worker failed.",
    )
    outputs = dict(got.outputs)
    assert (outputs["result"], outputs["image"], outputs["digest"]) == (
        "failed",
        "reg/app:1",
        "sha256:abc",
    )
    assert [d["result"] for d in json.loads(outputs["deployments"])] == ["succeeded", "failed"]
    assert got.summary.startswith("## django-k8s-deploy: failed\n")
    assert "**Error:**" not in got.summary  # the table says it
    assert "| deployment/worker | shop | `reg/app:1` | ❌ failed | 2.0s |" in got.summary


def test_wait_and_deploy_share_the_verdicts_annotations_and_table() -> None:
    waited = report.of_wait([WEB_GREEN, WORKER_RED])
    deployed = report.of_deploy(DeployFacts("img", "", "watch", results=[WEB_GREEN, WORKER_RED]))
    assert waited.annotations == deployed.annotations
    assert dict(waited.outputs)["deployments"] == dict(deployed.outputs)["deployments"]
    assert "| deployment/worker | shop | ❌ failed | 2.0s |" in waited.summary
    assert "State:" not in waited.summary  # wait applies nothing


def test_the_table_names_every_kind_the_same_way_and_the_json_keeps_its_shape() -> None:
    results = [
        WEB_GREEN,
        RolloutResult("db", "data", "timed-out", "timed out after 5m", 300.0, kind="StatefulSet"),
        RolloutResult("migrate-9b2d771", "shop", "failed", "failed: exit 3", 4.2, kind="Job"),
    ]
    got = report.of_deploy(DeployFacts("reg/app:1", "", "watch", results=results))
    table = got.summary[got.summary.index("| Workload") :].split("\n\n")[0].splitlines()
    assert table == [
        "| Workload | Namespace | Image | Result | Duration | Reason |",
        "|---|---|---|---|---|---|",
        "| deployment/web | shop | `reg/app:1` | ✅ succeeded | 0.6s | successfully rolled out |",
        "| statefulset/db | data | `reg/app:1` | ⏱️ timed-out | 300.0s | timed out after 5m |",
        "| job/migrate-9b2d771 | shop | `reg/app:1` | ❌ failed | 4.2s | failed: exit 3 |",
    ]
    waited = report.of_wait(results)
    assert waited.summary.splitlines()[2:4] == [
        "| Workload | Namespace | Result | Duration | Reason |",
        "|---|---|---|---|---|",
    ]
    assert "| job/migrate-9b2d771 | shop | ❌ failed | 4.2s | failed: exit 3 |" in waited.summary
    # outputs.deployments is unchanged: the plain name, and the kind in a key of its own.
    assert json.loads(dict(got.outputs)["deployments"])[2] == {
        "name": "migrate-9b2d771",
        "namespace": "shop",
        "result": "failed",
        "reason": "failed: exit 3",
        "duration_seconds": 4.2,
        "kind": "Job",
    }


def test_publish_is_the_one_emitter_and_fences_diagnosis_sections(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = Reporter(github=True, stream=stream, output_file=tmp_path / "out")
    reporter.publish(
        report.Report(
            sections=(report.Section("Diagnosis: deployment/web", ("::error::from a log",)),),
            lines=("State: x",),
            annotations=(Annotation("error", "boom", "Rollout failed"),),
            outputs=(("result", "failed"),),
        )
    )
    log = stream.getvalue().splitlines()
    assert log[0] == "::group::Diagnosis: deployment/web"
    assert log[1].startswith("::stop-commands::") and log[2] == ": :error::from a log"
    assert log[3] == f"::{log[1].removeprefix('::stop-commands::')}::"
    assert log[4:] == ["::endgroup::", "State: x", "::error title=Rollout failed::boom"]
    assert "result<<" in (tmp_path / "out").read_text()


def test_timestamps_from_services_are_read_one_way() -> None:
    from datetime import UTC, datetime

    from deployer import timestamps

    assert timestamps.parse("2026-11-26T10:10:41Z") == datetime(
        2026, 11, 26, 10, 10, 41, tzinfo=UTC
    )
    assert timestamps.parse("2026-11-26T10:10:41.123456789Z") == datetime(
        2026, 11, 26, 10, 10, 41, 123456, tzinfo=UTC
    )
    assert timestamps.parse("2026-11-26T10:10:41") == datetime(2026, 11, 26, 10, 10, 41, tzinfo=UTC)
    assert timestamps.parse("yesterday") is None
    assert timestamps.parse(None) is None
