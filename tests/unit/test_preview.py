"""The dry-run diff: only real changes, named by path; named lists by name; Secret values never."""

from __future__ import annotations

import copy
import json
from typing import Any

from deployer.preview import Change, diff, summary

LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "100",
        "generation": 3,
        "managedFields": [{"manager": "django-k8s-deploy"}],
        "annotations": {"deployment.kubernetes.io/revision": "3", "team": "core"},
    },
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "reg/app:old", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "proxy:1"},
                ]
            }
        },
    },
    "status": {"replicas": 2, "observedGeneration": 3},
}


def test_an_identical_object_is_unchanged_whatever_the_server_owned_fields_say() -> None:
    planned = copy.deepcopy(LIVE)
    planned["metadata"]["resourceVersion"] = "101"
    planned["metadata"]["managedFields"] = []
    planned["status"] = {}
    result = diff(LIVE, planned)
    assert not result.changed
    assert result.lines() == ["deployment/web in shop: unchanged"]


def test_changed_fields_are_named_by_path_and_containers_by_name() -> None:
    planned = copy.deepcopy(LIVE)
    containers = planned["spec"]["template"]["spec"]["containers"]
    containers.reverse()  # order alone is no change for named lists
    containers[1]["image"] = "reg/app:new"
    containers[1]["env"].append({"name": "B", "value": "2"})
    planned["spec"]["replicas"] = 3
    planned["metadata"]["annotations"]["kubernetes.io/change-cause"] = "django-k8s-deploy abc"
    result = diff(LIVE, planned)
    assert result.changes == (
        Change(
            "+", "metadata.annotations.kubernetes.io/change-cause", new='"django-k8s-deploy abc"'
        ),
        Change("~", "spec.replicas", old="2", new="3"),
        Change("+", "spec.template.spec.containers[web].env[B]", new='{"name": "B", "value": "2"}'),
        Change(
            "~",
            "spec.template.spec.containers[web].image",
            old='"reg/app:old"',
            new='"reg/app:new"',
        ),
    )
    assert result.lines()[0] == "deployment/web in shop: 4 fields would change"
    assert result.lines()[3] == (
        '  + spec.template.spec.containers[web].env[B]: {"name": "B", "value": "2"}'
    )


def test_a_new_object_would_be_created_and_lists_its_spec() -> None:
    result = diff(None, LIVE)
    assert result.created
    assert result.lines()[0] == "deployment/web in shop: would be created"
    # Field by field, containers by name (spec.template as one line was cut at "…").
    assert [c.path for c in result.changes] == [
        "spec.replicas",
        "spec.template.spec.containers[web]",
        "spec.template.spec.containers[sidecar]",
    ]


SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "app-secrets", "namespace": "shop"},
    "type": "Opaque",
    "data": {"SECRET_KEY": "c2VjcmV0LW9uZQ==", "GONE": "eA==", "SAME": "eQ=="},
}


def test_secret_values_are_never_shown_only_which_keys_changed() -> None:
    planned = copy.deepcopy(SECRET)
    planned["data"]["SECRET_KEY"] = "c2VjcmV0LXR3bw=="
    del planned["data"]["GONE"]
    planned["data"]["NEW"] = "bmV3LXZhbHVl"
    result = diff(SECRET, planned)
    assert result.changes == (
        Change("-", "data.GONE", old="(hidden)"),
        Change("+", "data.NEW", new="(hidden)"),
        Change("~", "data.SECRET_KEY", old="(hidden)", new="(value changed)"),
    )
    text = "\n".join(result.lines())
    for value in ("c2VjcmV0", "bmV3LXZhbHVl", "eA==", "eQ=="):
        assert value not in text


def test_a_new_secret_lists_its_keys_without_values() -> None:
    result = diff(None, SECRET)
    assert "\n".join(result.lines()) == (
        "secret/app-secrets in shop: would be created\n"
        "  + data.GONE: (hidden)\n"
        "  + data.SAME: (hidden)\n"
        "  + data.SECRET_KEY: (hidden)"
    )


def test_a_secret_losing_its_whole_data_shows_no_value() -> None:
    planned = copy.deepcopy(SECRET)
    del planned["data"]
    assert "c2VjcmV0" not in "\n".join(diff(SECRET, planned).lines())


def test_long_values_are_cut_and_many_changes_are_summarised() -> None:
    live = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    planned = {
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {f"K{i:02}": "x" * 500 for i in range(50)},
    }
    lines = diff(live, planned).lines()
    assert len(lines) == 1 + 40 + 1
    assert lines[-1] == "  … and 10 more"
    assert lines[1].endswith("…") and len(lines[1]) < 160


# -- a diff a reviewer reads: pods first, stamps in one line, new Jobs as sent and in full ------

SUM_A, SUM_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
LONG_ARGS = ["sh", "-c", "python manage.py migrate --noinput && python manage.py createcachetable"]


def workload(image: str, checksum: str, cause: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": {"kubernetes.io/change-cause": cause},
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {"annotations": {"django-k8s-deploy/config-checksum": checksum}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def test_each_workload_says_first_whether_its_pods_roll_and_why() -> None:
    old = workload("reg/app:1", SUM_A, "django-k8s-deploy 111111111111")
    cases = {
        "image and config": workload("reg/app:2", SUM_B, "django-k8s-deploy 222222222222"),
        "config only": workload("reg/app:1", SUM_B, "django-k8s-deploy 222222222222"),
        "replicas only": workload("reg/app:1", SUM_A, "django-k8s-deploy 111111111111", 3),
    }
    spec_change = copy.deepcopy(old)
    spec_change["spec"]["template"]["spec"]["containers"][0]["args"] = ["--workers", "4"]
    cases["spec"] = spec_change
    lines = [diff(old, new).pods_line() for new in cases.values()]
    assert lines == [
        "deployment/web in shop: pods will roll (image, config)",
        "deployment/web in shop: pods will roll (config)",
        "deployment/web in shop: pods stay: the pod template is unchanged",
        "deployment/web in shop: pods will roll (spec)",
    ]
    assert diff(None, old).pods_line() == "deployment/web in shop: new: its pods will start"
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"A": "1"}}
    assert summary([diff(old, cases["config only"]), diff(None, config_map)]) == [
        "deployment/web in shop: pods will roll (config)"
    ]


def test_our_stamps_are_one_short_line_each_never_a_hash() -> None:
    old = workload("reg/app:1", SUM_A, "django-k8s-deploy 111111111111")
    new = workload("reg/app:2", SUM_B, "django-k8s-deploy 222222222222")
    lines = diff(old, new).lines()
    assert lines == [
        "deployment/web in shop: 3 fields would change",
        "  ~ change cause: django-k8s-deploy 111111111111 → django-k8s-deploy 222222222222",
        "  ~ config checksum (the manifests' ConfigMaps/Secrets it uses): changed",
        '  ~ spec.template.spec.containers[web].image: "reg/app:1" → "reg/app:2"',
    ]
    assert not any("a" * 64 in line or "b" * 64 in line for line in lines)
    # A template that had no annotations yet: still one line, not the mapping with its hash.
    bare = copy.deepcopy(old)
    del bare["spec"]["template"]["metadata"]
    added = diff(bare, old).lines()
    assert added[1:] == ["  + config checksum (the manifests' ConfigMaps/Secrets it uses): added"]


JOB_SENT: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "migrate-0123abcd-9f8e7", "namespace": "shop"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "migrate",
                        "image": "registry.digitalocean.com/team/antisocial@sha256:" + "c" * 64,
                        "args": LONG_ARGS,
                        "envFrom": [{"configMapRef": {"name": "antisocial-config"}}],
                    }
                ],
            }
        },
    },
}


def job_as_the_server_answers() -> dict[str, Any]:
    """The dry-run result of JOB_SENT: defaults and a random controller-uid added."""
    job = copy.deepcopy(JOB_SENT)
    uid = "5f1c9a2e-7b3d-4e8f-9a1b-2c3d4e5f6a7b"
    spec = job["spec"]
    spec.update(
        {
            "completionMode": "NonIndexed",
            "completions": 1,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "suspend": False,
            "manualSelector": False,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
        }
    )
    spec["template"]["metadata"] = {
        "labels": {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
    }
    container = spec["template"]["spec"]["containers"][0]
    container.update(
        {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"}
    )
    spec["template"]["spec"].update({"dnsPolicy": "ClusterFirst", "schedulerName": "default"})
    return job


def test_a_new_job_shows_what_was_sent_with_its_image_and_command_in_full() -> None:
    result = diff(None, job_as_the_server_answers(), JOB_SENT)
    text = "\n".join(result.lines())
    for default in ("completionMode", "podReplacementPolicy", "controller-uid", "dnsPolicy"):
        assert default not in text
    assert "…" not in text
    image = JOB_SENT["spec"]["template"]["spec"]["containers"][0]["image"]
    assert f'  + spec.template.spec.containers[migrate].image: "{image}"' in result.lines()
    args = "  + spec.template.spec.containers[migrate].args: " + json.dumps(LONG_ARGS)
    assert args in result.lines()
    assert result.pods == "new: will run"


def test_images_and_commands_are_never_left_out_past_the_line_limit() -> None:
    sent = copy.deepcopy(JOB_SENT)
    sent["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": f"VAR_{i:02}", "value": "x" * 90} for i in range(60)
    ]
    lines = diff(None, sent, sent).lines()
    assert any(line.endswith(json.dumps(LONG_ARGS)) for line in lines)
    assert any(".containers[migrate].image:" in line for line in lines)
    assert lines[-1].startswith("  … and ")
