"""Start-up: the CLI and the pipeline load without the HTTP stack or the `kubernetes` client.

`kubernetes` (about 0.35 s) and `requests` are imported where they are used, when a run reaches
the API discovery (apply) or the DigitalOcean API, not when `python -m deployer` starts; a
cluster is reached through our own urllib3 transport (`wait` never imports `kubernetes`, see
test_kube_endpoint). Each check runs in a
fresh interpreter: this test process has long since imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("kubernetes", "requests")


def loaded_after(code: str) -> list[str]:
    """The top-level packages of HEAVY that a fresh interpreter holds after running `code`."""
    script = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_the_cli_and_the_pipeline_import_neither_kubernetes_nor_requests() -> None:
    assert loaded_after("import deployer.cli, deployer.pipeline") == []


def test_a_cluster_connection_does_not_load_the_kubernetes_package() -> None:
    assert loaded_after("from deployer.kube import Cluster, EventStream") == []


def test_the_light_digitalocean_names_do_not_load_the_http_client() -> None:
    code = (
        "from deployer.digitalocean import DEFAULT_API_URL, SCOPE_READ, DoksCluster, Kubeconfig\n"
        "from deployer.services import Services"
    )
    assert loaded_after(code) == []


@pytest.mark.parametrize(
    ("code", "heavy"),
    [
        ("from deployer.digitalocean import DigitalOcean", ["requests"]),
        ("from deployer.digitalocean import RetryPolicy", ["requests"]),
        ("from deployer.kube.discovery import dynamic_client", ["kubernetes"]),
    ],
)
def test_the_client_names_still_load_their_clients_when_asked_for(
    code: str, heavy: list[str]
) -> None:
    # The other side of the checks above: the probe sees these packages once they are imported.
    assert set(heavy) <= set(loaded_after(code))
