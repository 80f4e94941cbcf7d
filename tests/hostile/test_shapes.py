"""Class 5: shapes and sizes. Each is exit 2 with one line naming the file:line or the input, found
before anything slow (no case here gets past preflight, so none can reach a cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.support import DEPLOYMENT, action_env, check, run_action, run_cli, workspace

MANIFEST = "deploy/deployment.yaml"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
)

MANIFESTS: dict[str, str | bytes] = {
    "billion laughs": LAUGHS,
    "5000-deep list": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "5000-deep mapping (flow)": "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    "200-deep block mapping": "".join("  " * i + f"k{i}:\n" for i in range(200))
    + "  " * 200
    + "v: 1\n",
    "metadata is a list": DEPLOYMENT.replace("metadata:\n  name: web\n", "metadata: [name, web]\n"),
    "metadata is a string": DEPLOYMENT.replace("metadata:\n  name: web\n", "metadata: web\n"),
    "name is a mapping": DEPLOYMENT.replace("  name: web\n", "  name: {first: web}\n", 1),
    "name is a number": DEPLOYMENT.replace("  name: web\n", "  name: 12\n", 1),
    "name too long": DEPLOYMENT.replace("  name: web\n", f"  name: {'a' * 254}\n", 1),
    "name with capitals": DEPLOYMENT.replace("  name: web\n", "  name: Web\n", 1),
    "namespace is a list": DEPLOYMENT.replace(
        "  name: web\n", "  name: web\n  namespace: [a, b]\n", 1
    ),
    "spec is a list": DEPLOYMENT.replace("spec:\n  replicas: 1\n", "spec: []\nx:\n  replicas: 1\n"),
    "template is a string": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {template: t}\n",
    "template spec is a list": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {template: {spec: [a]}}\n",
    "containers is a mapping": DEPLOYMENT.replace(
        "      containers:\n", "      containers: {a: b}\n      x:\n"
    ),
    "a container is a string": DEPLOYMENT + "        - just-a-string\n",
    "container name missing": DEPLOYMENT + "        - {image: 'redis:7'}\n",
    "env is a string": DEPLOYMENT.replace(
        "          envFrom:\n", "          env: FOO=bar\n          envFrom:\n"
    ),
    "an env entry is a string": DEPLOYMENT.replace(
        "          envFrom:\n", "          env: [FOO=bar]\n          envFrom:\n"
    ),
    "envFrom entry is a string": DEPLOYMENT.replace(
        "            - secretRef: {name: app-secrets}\n", "            - app-secrets\n"
    ),
    "secretRef is a string": DEPLOYMENT.replace(
        "secretRef: {name: app-secrets}", "secretRef: app-secrets"
    ),
    "volumes is a string": DEPLOYMENT + "      volumes: data\n",
    "a volume is a string": DEPLOYMENT + "      volumes: [data]\n",
    "volume configMap is a string": DEPLOYMENT + "      volumes: [{name: d, configMap: c}]\n",
    "imagePullSecrets entry is a string": DEPLOYMENT + "      imagePullSecrets: [regcred]\n",
    "annotations is a list": DEPLOYMENT.replace(
        "{labels: {app: web}}", "{labels: {app: web}, annotations: [a]}"
    ),
    "labels is a string": DEPLOYMENT.replace("  name: web\n", "  name: web\n  labels: web\n", 1),
    "kind is a number": DEPLOYMENT.replace("kind: Deployment", "kind: 7"),
    "kind is lower case": DEPLOYMENT.replace("kind: Deployment", "kind: deployment"),
    "apiVersion garbage": DEPLOYMENT.replace("apiVersion: apps/v1", "apiVersion: 'apps / v1'"),
    "kind List": "apiVersion: v1\nkind: List\nmetadata: {name: l}\nitems: []\n",
    "a document is a list": "- a\n- b\n",
    "a document is a scalar": "just text\n",
    "python tag": "!!python/object/apply:os.system ['true']\n",
    "binary tag as name": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: !!binary aGVsbG8=}\n",
    "merge key": CM + "data:\n  <<: {a: b}\n",
    "key is a list": CM + "data:\n  ? [a, b]\n  : c\n",
    "NUL character": CM + 'data: {a: "x\x00y"}\n',
    "tab indentation": CM + "data:\n\ta: b\n",
    "not UTF-8": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: "
    + b"\xff\xfe}\n",
    "UTF-16": CM.encode("utf-16"),
    "more than 1000 documents": "---\n".join(
        [CM.replace("name: c", f"name: c{i}") for i in range(1002)]
    ),
    "2 MiB file": CM + "data:\n  big: " + "x" * (2 * 1024 * 1024) + "\n",
    "no objects at all": "# only a comment\n---\n",
    "mistyped placeholder": DEPLOYMENT.replace("<IMAGE>", "'< IMGAE >'"),
    "key missing from a ConfigMap of the manifests": CM
    + "data: {A: '1'}\n---\n"
    + DEPLOYMENT.replace(
        "          envFrom:\n",
        "          env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: B}}}]\n"
        "          envFrom:\n",
    ),
    "key with line breaks and a command": CM
    + "data: {A: '1'}\n---\n"
    + DEPLOYMENT.replace(
        "          envFrom:\n",
        "          env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: "
        '"B\\n::error::forged\\u2028::warning::x"}}}]\n'
        "          envFrom:\n",
    ),
}


@pytest.mark.parametrize("case", list(MANIFESTS))
def test_odd_shapes_and_sizes_are_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    ws = tmp_path / "ws"
    (ws / "deploy").mkdir(parents=True)
    content = MANIFESTS[case]
    path = ws / MANIFEST
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    run = run_action(action_env(ws, {}))
    where = "manifests" if case == "no objects at all" else MANIFEST
    check(run, 2, where, "5 shapes and sizes: manifests")
    assert "Credentials" not in run.log


def test_many_files_together_over_the_total_limit(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    for i in range(5):
        (ws / "deploy" / f"big{i}.yaml").write_text(
            CM.replace("name: c", f"name: c{i}") + "data:\n  big: " + "x" * (1000 * 1024) + "\n"
        )
    run = run_action(action_env(ws, {"manifests": "deploy/*.yaml"}))
    check(run, 2, "deploy/big", "5 shapes and sizes: manifests")


TIMEOUTS = (
    "1e400s",
    "9" * 400 + "s",
    "inf",
    "nan",
    "-1s",
    "0",
    "0s",
    "25h",
    "10x",
    "1h1h1h" * 10,
    "½m",
)


@pytest.mark.parametrize("value", TIMEOUTS)
def test_timeouts_out_of_bounds_are_refused(tmp_path: Path, value: str) -> None:
    run = run_action(action_env(workspace(tmp_path), {"timeout": value}))
    check(run, 2, "timeout", "5 shapes and sizes: inputs")


@pytest.mark.parametrize("value", ["1e400s", "inf", "25h", "0"])
def test_wait_timeouts_out_of_bounds_are_refused(tmp_path: Path, value: str) -> None:
    run = run_cli(["wait", "--deployment", "web", "--timeout", value], {"GITHUB_ACTIONS": "true"})
    check(run, 2, "--timeout", "5 shapes and sizes: CLI")


KUBECONFIGS = {
    "not YAML": "apiVersion: v1\nclusters: [\n",
    "a list": "- a\n- b\n",
    "a scalar": "hello\n",
    "no clusters": "apiVersion: v1\nkind: Config\n",
    "clusters is a string": "clusters: abc\n",
    "cluster without server": "clusters: [{name: a, cluster: {}}]\n",
    "server is not a URL": "clusters: [{name: a, cluster: {server: 'not a url'}}]\n",
    "server with a newline": 'clusters: [{name: a, cluster: {server: "https://a\\n::warning::PWNED"}}]\n',
    "users is a mapping": "clusters: [{name: a, cluster: {server: 'https://a'}}]\nusers: {a: b}\n",
    "user is a list": "clusters: [{name: a, cluster: {server: 'https://a'}}]\nusers: [{name: u, user: [a]}]\n",
    "alias bomb": LAUGHS,
    "two documents": "clusters: []\n---\nclusters: []\n",
    "300 KiB": "clusters: [{name: a, cluster: {server: 'https://a'}}]\n# "
    + "x" * (300 * 1024)
    + "\n",
}


@pytest.mark.parametrize("case", list(KUBECONFIGS))
def test_garbage_kubeconfig_input_is_one_line(tmp_path: Path, case: str) -> None:
    inputs = {"kubeconfig": KUBECONFIGS[case], "digitalocean-token": "", "cluster": ""}
    run = run_action(action_env(workspace(tmp_path), inputs))
    check(run, 2, "kubeconfig", "5 shapes and sizes: kubeconfig")


@pytest.mark.parametrize(
    "case", ["not YAML", "a list", "a scalar", "no clusters", "server is not a URL", "alias bomb"]
)
def test_garbage_kubeconfig_file_given_to_wait_is_one_line(tmp_path: Path, case: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIGS[case])
    run = run_cli(
        ["wait", "--deployment", "web", "--kubeconfig", str(path)], {"GITHUB_ACTIONS": "true"}
    )
    check(run, 2, "--kubeconfig", "5 shapes and sizes: CLI")


def test_non_utf8_kubeconfig_file_given_to_wait_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(b"clusters: \xff\xfe\n")
    run = run_cli(
        ["wait", "--deployment", "web", "--kubeconfig", str(path)], {"GITHUB_ACTIONS": "true"}
    )
    check(run, 2, "--kubeconfig", "5 shapes and sizes: CLI")


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00garbage", b"a: &a [1]\nb: *a\n", b"x: " + b"[" * 3000]
)
def test_cli_render_of_hostile_files_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.yaml"
    path.write_bytes(content)
    run = run_cli(
        ["render", "--manifest", str(path), "--image", "reg/app:1"], {"GITHUB_ACTIONS": "true"}
    )
    check(run, 2, str(path), "5 shapes and sizes: CLI")


NOT_UTF8, OVER_1_MIB = b"A=\xff\xfe\n", b"A=" + b"x" * (1024 * 1024 + 10)


@pytest.mark.parametrize(
    ("flag", "content"),
    [
        ("--secrets-file", NOT_UTF8),
        ("--secrets-file", OVER_1_MIB),
        ("--kubeconfig", NOT_UTF8),
        ("--kubeconfig", OVER_1_MIB),
        ("--env-file", NOT_UTF8),  # a large .env is streamed by python-dotenv, like any .env
    ],
    ids=[
        "secrets not UTF-8",
        "secrets over 1 MiB",
        "kubeconfig not UTF-8",
        "kubeconfig over 1 MiB",
        "env-file not UTF-8",
    ],
)
def test_cli_files_that_are_not_text_are_one_line(
    tmp_path: Path, flag: str, content: bytes
) -> None:
    ws = workspace(tmp_path)
    path = tmp_path / "file"
    path.write_bytes(content)
    argv = [
        "deploy",
        "--image",
        "reg.example/app",
        "--sha",
        "0" * 40,
        "--manifest",
        "deploy/deployment.yaml",
        flag,
        str(path),
    ]
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(ws),
        "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_" + "x" * 20,
    }
    check(run_cli(argv, env), 2, flag, "5 shapes and sizes: CLI")
