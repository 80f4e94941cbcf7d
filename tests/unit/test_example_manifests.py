"""The example's web tier survives rollouts and node drains without dropping requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "examples" / "antisocial" / "deploy"


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "deployment.yaml").read_text()) if d]


def test_web_pauses_before_stopping_within_its_grace_period() -> None:
    [web] = [
        d
        for d in documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "antisocial-web"
    ]
    pod = web["spec"]["template"]["spec"]
    [container] = pod["containers"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = 25  # run.sh: gunicorn --graceful-timeout 25
    assert "--graceful-timeout 25" in (DEPLOY.parent / "run.sh").read_text()
    assert pause > 0
    assert pod["terminationGracePeriodSeconds"] > pause + graceful


def test_a_disruption_budget_keeps_one_web_pod_serving() -> None:
    docs = documents()
    [budget] = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    [web] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "antisocial-web"
    ]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    assert web["spec"]["replicas"] > budget["spec"]["minAvailable"]
