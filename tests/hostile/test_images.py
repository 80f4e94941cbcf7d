"""Class 2: a different image deployed at exit 0. The placeholder must end up in the image field of
containers; text elsewhere, duplicates and our repository at another tag are errors at file:line.
Controls (last table) show that what is fine still gets past preflight (and stops at `cluster`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.support import DEPLOYMENT, action_env, check, run_action, workspace

MANIFEST = "deploy/deployment.yaml"
OLD = "registry.example.com/team/app:0000000000000000000000000000000000000000"
HARD = DEPLOYMENT.replace("image: <IMAGE>", f"image: {OLD}")
CONFIG = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {A: b}\n"
CRON = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: job, image: IMG}]
"""

REFUSED: dict[str, dict[str, str]] = {
    "placeholder only in a comment": {
        MANIFEST: "# image: <IMAGE>\n" + HARD.replace("image: r", "image: other.example/x:1 #", 1)
    },
    "placeholder only as a mapping key": {
        MANIFEST: DEPLOYMENT.replace("image: <IMAGE>", "image: redis:7").replace(
            "{labels: {app: web}}", "{labels: {app: web}, annotations: {<IMAGE>: x}}"
        )
    },
    "placeholder only in an env value": {
        MANIFEST: DEPLOYMENT.replace(
            "image: <IMAGE>\n", "image: redis:7\n          env: [{name: IMG, value: <IMAGE>}]\n"
        )
    },
    "placeholder only in a ConfigMap": {
        MANIFEST: HARD.replace(OLD, "redis:7") + "---\n" + CONFIG.replace("A: b", "A: <IMAGE>")
    },
    "duplicate image key": {
        MANIFEST: DEPLOYMENT.replace(
            "image: <IMAGE>\n", f"image: <IMAGE>\n          image: {OLD}\n"
        )
    },
    "duplicate Deployment in one file": {MANIFEST: DEPLOYMENT + "---\n" + HARD},
    "duplicate Deployment in two files": {MANIFEST: DEPLOYMENT, "deploy/z-old.yaml": HARD},
    "duplicate: no namespace and namespace default": {
        MANIFEST: DEPLOYMENT
        + "---\n"
        + HARD.replace("  name: web\n", "  name: web\n  namespace: default\n", 1)
    },
    "our repository at another tag in a sidecar": {
        MANIFEST: DEPLOYMENT + f"        - {{name: side, image: '{OLD}'}}\n"
    },
    "our repository at another tag in an init container": {
        MANIFEST: DEPLOYMENT.replace(
            "      containers:\n",
            f"      initContainers: [{{name: migrate, image: '{OLD}'}}]\n      containers:\n",
        )
    },
    "our repository by digest": {
        MANIFEST: DEPLOYMENT
        + "        - {name: side, image: 'registry.example.com/team/app@sha256:"
        + "a" * 64
        + "'}\n"
    },
    "placeholder with a suffix": {
        MANIFEST: DEPLOYMENT.replace("image: <IMAGE>", "image: <IMAGE>-debug")
    },
    "placeholder with a prefix": {
        MANIFEST: DEPLOYMENT.replace("image: <IMAGE>", "image: mirror/<IMAGE>")
    },
    "container without image": {MANIFEST: DEPLOYMENT + "        - {name: side}\n"},
    "container with image null": {MANIFEST: DEPLOYMENT + "        - {name: side, image: null}\n"},
    "CronJob with our repository at another tag": {
        MANIFEST: DEPLOYMENT + "---\n" + CRON.replace("IMG", OLD)
    },
    "bare Pod with another image only": {
        MANIFEST: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: 'redis:7'}]}\n"
    },
    "placeholder through an alias": {
        MANIFEST: DEPLOYMENT.replace("image: <IMAGE>", "image: &img <IMAGE>")
        + "        - {name: side, image: *img}\n"
    },
    "image is a list": {MANIFEST: DEPLOYMENT.replace("image: <IMAGE>", "image: [<IMAGE>]")},
    "workloads but none with the placeholder, second file has it in a comment": {
        MANIFEST: HARD.replace(OLD, "redis:7"),
        "deploy/notes.yaml": "# <IMAGE>\n" + CONFIG,
    },
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_manifest_that_would_deploy_another_image_is_refused(
    tmp_path: Path, digitalocean: str, case: str
) -> None:
    files = REFUSED[case]
    ws = tmp_path / "ws"
    for name, text in files.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    run = run_action(action_env(ws, {"manifests": "deploy/*.yaml"}, digitalocean))
    check(run, 2, "deploy/", "2 wrong image")
    assert "Preflight" in run.log and "Credentials" not in run.log  # stopped before any service


ACCEPTED: dict[str, tuple[str, str]] = {
    "config only, no placeholder needed": (CONFIG, "in the image of 0 container(s)"),
    "ours plus a sidecar of another repository": (
        DEPLOYMENT + "        - {name: cache, image: 'redis:7'}\n",
        "container `cache` keeps the image written in the manifest: redis:7",
    ),
    "ours in init container and container": (
        DEPLOYMENT.replace(
            "      containers:\n",
            "      initContainers: [{name: migrate, image: <IMAGE>}]\n      containers:\n",
        ),
        "in the image of 2 container(s)",
    ),
    "ours in a CronJob too": (
        DEPLOYMENT + "---\n" + CRON.replace("IMG", "<IMAGE>"),
        "in the image of 2 container(s)",
    ),
    "placeholder quoted": (
        DEPLOYMENT.replace("image: <IMAGE>", 'image: "<IMAGE>"'),
        "in the image of 1 container(s)",
    ),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_what_is_fine_passes_preflight_and_says_which_containers_get_the_image(
    tmp_path: Path, digitalocean: str, case: str
) -> None:
    manifest, said = ACCEPTED[case]
    run = run_action(action_env(workspace(tmp_path, manifest), {}, digitalocean))
    check(run, 2, "cluster", "2 wrong image (controls)")
    assert said in run.log
