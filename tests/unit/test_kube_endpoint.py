"""The kubeconfig reader (kube.endpoint) and our own transport (kube.transport): what kubectl
reads from one or several kubeconfigs, and that each setting reaches a real TLS server (a local
HTTPS server with a test CA, see fake_api_server). `python -m deployer wait` on a token or a
client-certificate kubeconfig never imports the `kubernetes` package."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from urllib3.util.retry import Retry

from deployer import __version__
from deployer.errors import InputError
from deployer.kube import Cluster, Forbidden
from deployer.kube.endpoint import Endpoint, Source, choose, endpoint
from deployer.kube.transport import Answer, Transport, proxy_for
from tests.unit.fake_api_server import FakeApi, Pki, make_pki, serve

NO_RETRY = Retry(total=0, raise_on_status=False)


def kubeconfig(
    cluster: dict[str, Any],
    user: dict[str, Any],
    *,
    namespace: str | None = None,
    name: str = "x",
    current: str | None = "x",
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": f"c-{name}", "user": f"u-{name}"}
    if namespace:
        context["namespace"] = namespace
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"c-{name}", "cluster": cluster}],
        "users": [{"name": f"u-{name}", "user": user}],
        "contexts": [{"name": name, "context": context}],
    }
    if current:
        config["current-context"] = current
    return config


def write(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def read(config: dict[str, Any], context: str | None = None) -> Endpoint:
    return endpoint(choose([Source("", config)], context))


# --- reading a kubeconfig -------------------------------------------------------------------


def test_a_token_kubeconfig_gives_a_bearer_header_and_the_contexts_namespace() -> None:
    got = read(
        kubeconfig(
            {"server": "https://10.0.0.1:6443/", "certificate-authority-data": "Y2E="},
            {"token": "s3cret"},
            namespace="shop",
        )
    )
    assert (got.server, got.namespace, got.ca_data) == ("https://10.0.0.1:6443", "shop", b"ca")
    assert got.authorization() == "Bearer s3cret"
    assert "s3cret" not in repr(got)


def test_without_a_namespace_in_the_context_it_is_default() -> None:
    assert read(kubeconfig({"server": "https://h:1"}, {"token": "t"})).namespace == "default"


def test_client_certificate_data_stays_in_memory(tmp_path: Path) -> None:
    cert, key = base64.b64encode(b"CERT").decode(), base64.b64encode(b"KEY").decode()
    got = read(
        kubeconfig(
            {"server": "https://h:1"},
            {"client-certificate-data": cert, "client-key-data": key},
        )
    )
    assert (got.cert_data, got.key_data, got.cert_file, got.key_file) == (
        b"CERT",
        b"KEY",
        None,
        None,
    )
    assert got.authorization() is None


def test_files_named_in_a_kubeconfig_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("ca.crt", "me.crt", "me.key", "token"):
        (tmp_path / "pki" / name).write_text("x\n")
    config = kubeconfig(
        {"server": "https://h:1", "certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/me.crt", "client-key": "pki/me.key", "tokenFile": "pki/token"},
    )
    path = write(tmp_path / "config", config)
    got = endpoint(choose([Source(path, config)], None))
    assert got.ca_data is None
    assert got.ca_file == str(tmp_path / "pki" / "ca.crt")
    assert (got.cert_file, got.key_file) == (
        str(tmp_path / "pki" / "me.crt"),
        str(tmp_path / "pki" / "me.key"),
    )
    assert got.authorization() == "Bearer x"


def test_certificate_authority_data_wins_over_the_file() -> None:
    got = read(
        kubeconfig(
            {
                "server": "https://h:1",
                "certificate-authority-data": "Y2E=",
                "certificate-authority": "/nowhere/ca.crt",
            },
            {},
        )
    )
    assert (got.ca_data, got.ca_file) == (b"ca", None)


def test_insecure_and_tls_server_name_are_read() -> None:
    got = read(
        kubeconfig(
            {"server": "https://h:1", "insecure-skip-tls-verify": True, "tls-server-name": "api"},
            {},
        )
    )
    assert (got.insecure, got.tls_server_name) == (True, "api")


def test_username_and_password_are_basic_auth() -> None:
    got = read(kubeconfig({"server": "https://h:1"}, {"username": "ann", "password": "pw"}))
    assert got.authorization() == "Basic " + base64.b64encode(b"ann:pw").decode()


def test_several_files_merge_as_kubectl_merges_them(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ca.crt").write_text("x\n")
    first = kubeconfig({"server": "https://first:1"}, {"token": "one"}, name="a", current="a")
    # The second names cluster c-a again (the first file's wins), sets current-context to its own
    # context (the first file's wins) and brings context b, whose CA is relative to ITS file.
    second = kubeconfig(
        {"server": "https://second:1", "certificate-authority": "ca.crt"},
        {"token": "two"},
        name="b",
        current="b",
    )
    second["clusters"].append({"name": "c-a", "cluster": {"server": "https://shadowed:1"}})
    sources = [
        Source(write(tmp_path / "a.yaml", first), first),
        Source(write(tmp_path / "b" / "b.yaml", second), second),
    ]
    chosen = endpoint(choose(sources, None))
    assert (chosen.server, chosen.authorization()) == ("https://first:1", "Bearer one")
    other = endpoint(choose(sources, "b"))
    assert (other.server, other.ca_file) == ("https://second:1", str(tmp_path / "b" / "ca.crt"))
    assert other.authorization() == "Bearer two"


def test_kubeconfig_lists_several_files_and_skips_those_that_do_not_exist(
    tmp_path: Path,
) -> None:
    first = kubeconfig({"server": "https://first:1"}, {"token": "one"}, name="a", current=None)
    second = kubeconfig({"server": "https://second:1"}, {"token": "two"}, name="b", current="a")
    paths = [
        write(tmp_path / "a.yaml", first),
        str(tmp_path / "missing.yaml"),
        write(tmp_path / "b.yaml", second),
    ]
    env = {"KUBECONFIG": os.pathsep.join(paths)}
    with Cluster.from_kubeconfig_file(None, env=env) as cluster:
        assert cluster.where == "https://first:1"
    with Cluster.from_kubeconfig_file(None, context="b", env=env) as cluster:
        assert cluster.where == "https://second:1"


def test_a_missing_context_is_one_input_error_naming_kubeconfig(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig({"server": "https://h:1"}, {"token": "tok"}))
    with pytest.raises(InputError) as info:
        Cluster.from_kubeconfig_file(None, context="prod", env={"KUBECONFIG": path})
    assert str(info.value) == (
        f'KUBECONFIG: the kubeconfig {path} cannot be used: it has no context "prod". '
        "Point KUBECONFIG at a valid kubeconfig (and --context at one of its contexts)."
    )


@pytest.mark.parametrize(
    ("config", "why"),
    [
        (kubeconfig({"server": "https://h:1"}, {}, current=None), "it sets no current-context"),
        (
            {**kubeconfig({"server": "https://h:1"}, {}), "clusters": []},
            'its context "x" names no cluster it defines',
        ),
        (
            {**kubeconfig({"server": "https://h:1"}, {}), "users": []},
            'its context "x" names a user it does not define',
        ),
        (
            kubeconfig({"server": "https://h:1", "certificate-authority": "/nowhere"}, {}),
            "its certificate-authority /nowhere does not exist",
        ),
        (
            kubeconfig({"server": "https://h:1"}, {"token": "two\nlines"}),
            "its user's token contains spaces, line breaks or non-ASCII characters",
        ),
        (
            kubeconfig({"server": "https://h:1", "certificate-authority-data": "bm90IGEgY2E="}, {}),
            "its certificate authority is not a PEM or DER certificate",
        ),
    ],
)
def test_a_kubeconfig_that_cannot_be_used_is_one_line_saying_why(
    config: dict[str, Any], why: str
) -> None:
    with pytest.raises(InputError) as info:
        Cluster.from_kubeconfig_dict(config)
    assert str(info.value).startswith(f"kubeconfig: the kubeconfig cannot be used: {why}")
    assert "\n" not in str(info.value)
    assert "lines" not in str(info.value)


def test_no_kubeconfig_file_at_all_is_one_input_error(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "nope")}
    with pytest.raises(InputError) as info:
        Cluster.from_kubeconfig_file(None, env=env)
    assert str(info.value).startswith(
        f"KUBECONFIG: the kubeconfig {tmp_path / 'nope'} cannot be used: no such file"
    )


@pytest.mark.parametrize(
    ("user", "plugin"),
    [
        ({"exec": {"command": "doctl"}}, True),
        ({"auth-provider": {"name": "oidc"}}, True),
        ({"token": "t"}, False),
        ({}, False),
    ],
)
def test_exec_and_auth_provider_users_go_to_the_clients_loader(
    user: dict[str, Any], plugin: bool
) -> None:
    config = kubeconfig({"server": "https://h:1"}, user)
    assert choose([Source("", config)], None).needs_client_loader is plugin


# --- proxies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "env", "proxy"),
    [
        ("https://10.0.0.1:6443", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://10.0.0.1:6443", {"https_proxy": "p:3128"}, "http://p:3128"),
        ("https://10.0.0.1:6443", {"HTTP_PROXY": "http://p:3128"}, None),
        ("http://10.0.0.1:8080", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
        ("https://127.0.0.1:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://localhost:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://[::1]:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
        ("https://k8s.example.com", {"HTTPS_PROXY": "p", "NO_PROXY": "example.com"}, None),
        ("https://k8s.example.com", {"HTTPS_PROXY": "p", "no_proxy": ".example.com"}, None),
        ("https://example.com", {"HTTPS_PROXY": "p", "NO_PROXY": "*.example.com"}, None),
        ("https://notexample.com", {"HTTPS_PROXY": "p", "NO_PROXY": "example.com"}, "http://p"),
        ("https://10.1.2.3", {"HTTPS_PROXY": "p", "NO_PROXY": "10.0.0.0/8"}, None),
        ("https://10.1.2.3:6443", {"HTTPS_PROXY": "p", "NO_PROXY": "10.1.2.3:443"}, "http://p"),
        ("https://10.1.2.3:6443", {"HTTPS_PROXY": "p", "NO_PROXY": "10.1.2.3:6443"}, None),
        ("https://10.1.2.3", {"HTTPS_PROXY": "p", "NO_PROXY": "*"}, None),
    ],
)
def test_the_proxy_is_the_one_kubectl_would_use(
    server: str, env: dict[str, str], proxy: str | None
) -> None:
    assert proxy_for(server, env) == proxy


# --- the transport against a TLS server ---------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def api(pki: Pki) -> Iterator[FakeApi]:
    yield from serve(pki)


def get(transport: Transport, path: str = "/version") -> urllib3.BaseHTTPResponse:
    return transport.request("GET", path, [], headers={}, timeout=(5, 5), retries=NO_RETRY)


def test_the_ca_from_data_in_memory_verifies_the_server_and_the_token_is_sent(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    config = kubeconfig(
        {"server": api.url, "certificate-authority-data": pki.b64(pki.ca)}, {"token": "tok"}
    )
    transport = Transport(read(config), str(tmp_path), env={})
    api.answers["/version"] = (200, {"gitVersion": "v1.99.0"})
    assert json.loads(get(transport).data) == {"gitVersion": "v1.99.0"}
    assert (api.seen[-1].authorization, api.seen[-1].client_cn) == ("Bearer tok", "")
    assert api.seen[-1].user_agent == f"django-k8s-deploy/{__version__}"


def test_the_servers_clock_is_read_from_its_date_only_over_verified_tls(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    # The same machine: the bound is at most 0 (Date is truncated to the second) and close to it.
    verified = Transport(
        read(kubeconfig({"server": api.url, "certificate-authority-data": pki.b64(pki.ca)}, {})),
        str(tmp_path),
        env={},
    )
    assert verified.server_clock_ahead is None
    api.answers["/version"] = (200, {"gitVersion": "v1.99.0"})
    get(verified)
    ahead = verified.server_clock_ahead
    assert ahead is not None and -2.0 < ahead <= 0.0
    # Without verification anyone could have written the Date: it is not read.
    insecure = Transport(
        read(kubeconfig({"server": api.url, "insecure-skip-tls-verify": True}, {})),
        str(tmp_path),
        env={},
    )
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        get(insecure)
    assert insecure.server_clock_ahead is None


def test_the_ca_from_a_file_verifies_the_server(api: FakeApi, pki: Pki, tmp_path: Path) -> None:
    config = kubeconfig({"server": api.url, "certificate-authority": str(pki.ca)}, {})
    get(
        Transport(read(config), str(tmp_path), env={}),
        "/apis/apps/v1/namespaces/shop/deployments/web",
    )


@pytest.mark.parametrize("ca", ["other", "none"])
def test_a_server_whose_certificate_the_ca_does_not_sign_is_refused(
    api: FakeApi, pki: Pki, tmp_path: Path, ca: str
) -> None:
    cluster: dict[str, Any] = {"server": api.url}
    if ca == "other":
        cluster["certificate-authority-data"] = pki.b64(pki.other_ca)
    transport = Transport(read(kubeconfig(cluster, {})), str(tmp_path), env={})
    with pytest.raises((Answer, urllib3.exceptions.HTTPError)) as info:
        get(transport)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert api.seen == []


def test_insecure_skip_tls_verify_accepts_any_certificate(api: FakeApi, tmp_path: Path) -> None:
    config = kubeconfig({"server": api.url, "insecure-skip-tls-verify": True}, {})
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        get(Transport(read(config), str(tmp_path), env={}), "/api/v1/namespaces/shop/pods")


def test_tls_server_name_is_the_name_checked_against_the_certificate(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    # The certificate names localhost and api.test, not 127.0.0.1.
    cluster = {
        "server": f"https://127.0.0.1:{api.port}",
        "certificate-authority-data": pki.b64(pki.ca),
    }
    with pytest.raises((Answer, urllib3.exceptions.HTTPError)) as info:
        get(Transport(read(kubeconfig(cluster, {})), str(tmp_path), env={}))
    assert "127.0.0.1" in str(info.value)
    named = {**cluster, "tls-server-name": "api.test"}
    get(
        Transport(read(kubeconfig(named, {})), str(tmp_path), env={}),
        "/api/v1/namespaces/shop/pods",
    )


def test_a_client_certificate_from_data_is_presented_and_its_files_are_gone_at_once(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    config = kubeconfig(
        {"server": api.url, "certificate-authority-data": pki.b64(pki.ca)},
        {
            "client-certificate-data": pki.b64(pki.client_cert),
            "client-key-data": pki.b64(pki.client_key),
        },
    )
    transport = Transport(read(config), str(private), env={})
    assert list(private.iterdir()) == []  # loaded into the SSL context, files removed
    get(transport, "/api/v1/namespaces/shop/pods")
    assert (api.seen[-1].client_cn, api.seen[-1].authorization) == ("djk-test", "")


def test_a_certificate_and_key_that_do_not_belong_together_are_one_line(
    pki: Pki, tmp_path: Path
) -> None:
    config = kubeconfig(
        {"server": "https://h:1"},
        {
            "client-certificate-data": pki.b64(pki.client_cert),
            "client-key-data": pki.b64(pki.server_key),
        },
    )
    with pytest.raises(InputError) as info:
        Cluster.from_kubeconfig_dict(config)
    assert str(info.value).startswith(
        "kubeconfig: the kubeconfig cannot be used: its client certificate and key do not load"
    )
    assert "PRIVATE KEY" not in str(info.value)


def test_an_answer_outside_2xx_is_our_error_with_the_transports_answer_as_its_cause(
    api: FakeApi, pki: Pki
) -> None:
    message = 'pods is forbidden: User "ci" cannot list resource "pods"'
    api.answers["/api/v1/namespaces/shop/pods"] = (403, {"kind": "Status", "message": message})
    config = kubeconfig(
        {"server": api.url, "certificate-authority-data": pki.b64(pki.ca)}, {"token": "tok"}
    )
    with Cluster.from_kubeconfig_dict(config) as connection, pytest.raises(Forbidden) as info:
        connection.call(
            "GET",
            "/api/v1/namespaces/shop/pods",
            [("labelSelector", "app=web")],
            what="list pods",
            verb="list",
            resource="pods",
            namespace="shop",
        )
    assert isinstance(info.value.__cause__, Answer)
    assert info.value.__cause__.status == 403
    assert str(info.value).startswith(
        f'the cluster identity may not "list" pods in namespace "shop": {message}'
    )
    assert api.seen[-1].query == {"labelSelector": ["app=web"]}


def test_a_body_is_sent_as_json_with_dates_as_the_client_wrote_them(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    import datetime

    config = kubeconfig({"server": api.url, "certificate-authority-data": pki.b64(pki.ca)}, {})
    transport = Transport(read(config), str(tmp_path), env={})
    api.answers["/x"] = (200, {})
    transport.request(
        "PATCH",
        "/x",
        [("fieldManager", "me")],
        headers={"Content-Type": "application/apply-patch+yaml"},
        body={"data": {"day": datetime.date(2024, 1, 2)}},
        timeout=(5, 5),
        retries=NO_RETRY,
    )
    assert json.loads(api.seen[-1].body) == {"data": {"day": "2024-01-02"}}


def test_an_exec_credential_plugin_still_works_through_the_clients_loader(
    api: FakeApi, pki: Pki, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    config = kubeconfig(
        {"server": api.url, "certificate-authority-data": pki.b64(pki.ca)},
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": str(plugin),
                "interactiveMode": "Never",
            }
        },
        namespace="shop",
    )
    path = write(tmp_path / "config", config)
    with Cluster.from_kubeconfig_file(path) as cluster:
        assert cluster.default_namespace == "shop"
        assert cluster.get_deployment("web", "shop") is not None
    assert api.seen[-1].authorization == "Bearer from-the-plugin"


# --- `wait` does not import the kubernetes package -----------------------------------------

PROBE = """
import sys
from deployer.cli import main
code = main()
print("KUBERNETES-LOADED" if any(m.split(".")[0] == "kubernetes" for m in sys.modules) else "NONE")
sys.exit(code)
"""


@pytest.mark.parametrize("credential", ["token", "client-certificate"])
def test_wait_on_a_finished_deployment_never_imports_the_kubernetes_package(
    api: FakeApi, pki: Pki, tmp_path: Path, credential: str
) -> None:
    user = (
        {"token": "tok"}
        if credential == "token"
        else {
            "client-certificate-data": pki.b64(pki.client_cert),
            "client-key-data": pki.b64(pki.client_key),
        }
    )
    config = kubeconfig(
        {"server": api.url, "certificate-authority-data": pki.b64(pki.ca)}, user, namespace="shop"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    env["KUBECONFIG"] = write(tmp_path / "config", config)
    argv = ["--deployment", "web", "--timeout", "20s", "--settle", "0s"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "wait", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployment/web: succeeded" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "NONE"
    assert any(s.path.endswith("/deployments/web") for s in api.seen)


def test_a_proxy_variable_that_is_no_url_is_one_line_without_its_password() -> None:
    config = kubeconfig({"server": "https://10.0.0.1"}, {"token": "t"})
    with pytest.raises(InputError) as info:
        Cluster.from_kubeconfig_dict(config, env={"HTTPS_PROXY": "socks5://ann:pw@proxy:1080"})
    assert str(info.value).startswith(
        "kubeconfig: the kubeconfig cannot be used: HTTPS_PROXY is not an http(s) proxy URL"
    )
    assert "pw" not in str(info.value)
