"""The stack's Kubernetes: etcd, kube-apiserver, controller-manager, scheduler, kwok on 127.0.0.1.

Real API server and controllers, so server-side apply, Deployments, ReplicaSets, RBAC and the
scheduler behave as in a cluster; kwok plays the kubelet for one Node, with our Stage files
(stack/kwok/) choosing how pods behave. Layout under `<state>/`:

    admin.kubeconfig     client cert, O=system:masters (what the components use, too)
    limited.kubeconfig   token user `djk-limited`: everything in namespace djk-limited, nothing else
    controlplane/pki/    CA, serving cert, admin cert, service-account key, tokens.csv
    controlplane/etcd/   etcd data (fresh every `up`)
    controlplane/pod-logs/  the prepared container logs kwok serves (stack/podlogs.py); its cwd
    controlplane/audit.log  the API server's audit log of pod log requests (DJK_AUDIT_LOG)
    logs/<component>.log

Pod logs go the way they go in a cluster: the API server looks up the pod's node, takes the
node's InternalIP and kubelet port from its status, and asks that "kubelet" over TLS, verifying
its certificate against our CA. kwok is that kubelet: it serves /containerLogs on 127.0.0.1 with
a certificate for IP 127.0.0.1, and its node stage writes --node-ip and --node-port into the
node's status (stack/kwok/node.yaml).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack import (
    Log,
    Proc,
    StackError,
    binary_paths,
    free_port,
    is_running,
    podlogs,
    spawn,
    stop,
    wait_for,
)

KWOK_DIR = Path(__file__).resolve().parent / "kwok"
NODE_NAME = "kwok-node-0"
# Modest on purpose: a pod asking for more than 8 CPUs is really Unschedulable.
NODE_RESOURCES = {"cpu": "8", "memory": "32Gi", "pods": "110"}
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service's cluster IP (first of SERVICE_CIDR)
POD_CIDR = "10.244.0.0/16"  # kwok's pod IPs; must not overlap SERVICE_CIDR
LIMITED_USER = "djk-limited"
LIMITED_NAMESPACE = "djk-limited"
DEPLOYER_SERVICE_ACCOUNT = ("kube-system", "do-deployer")  # the fake DigitalOcean API's identity
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
# Node: kubelets act only for their own node; the rest as before. The admission plugins let a
# namespace's annotations place its pods on the real node (stack/node.py): user manifests stay
# untouched.
ADMISSION_PLUGINS = "NodeRestriction,PodNodeSelector,PodTolerationRestriction"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Bump when the flags or bootstrap objects change: a running control plane made by an older
# recipe is then reported unhealthy and `up` replaces it (2: the real node's needs - kubelet
# client certificate, Node authorizer, admission plugins, kwok on its own node only).
RECIPE = 2


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path


def find_binaries() -> Binaries:
    """Where scripts/build-binaries keeps the versions it pins (it owns the cache layout)."""
    paths = binary_paths()
    k8s = Path(paths["K8S_BIN_DIR"])
    found = Binaries(
        etcd=Path(paths["ETCD_BIN"]),
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kwok=Path(paths["KWOK_BIN"]),
    )
    missing = [str(p) for p in vars(found).values() if not os.access(p, os.X_OK)]
    if missing:
        raise StackError(f"not built: {', '.join(missing)}; run scripts/build-binaries all")
    return found


# -- certificates -------------------------------------------------------------------------------


def _openssl(command: str, *args: str, cwd: Path) -> None:
    """Run `openssl <command> <args>`; `command` is split on spaces (all our names lack them)."""
    argv = ["openssl", *command.split(), *args]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"openssl {argv[1]} failed in {cwd}: {last}")


# P-256 keys: generated in milliseconds (RSA-2048 takes seconds on a busy 2-core machine), and
# Go, OpenSSL and Python's ssl all accept them, for TLS and for service-account token signing.
EC_KEY = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"


def _leaf(pki: Path, name: str, subject: str, extensions: list[str]) -> None:
    """A key and a CA-signed cert. SKI/AKI/keyUsage are kept: strict TLS stacks (Python 3.13's
    default context) reject leaf certificates without them."""
    ext = pki / f"{name}.ext"
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
        *extensions,
    ]
    ext.write_text("\n".join(lines) + "\n")
    _openssl(f"genpkey {EC_KEY} -out {name}.key", cwd=pki)
    _openssl(f"req -new -key {name}.key -out {name}.csr", "-subj", subject, cwd=pki)
    _openssl(
        f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 "
        f"-extfile {ext.name} -out {name}.crt",
        cwd=pki,
    )
    (pki / f"{name}.csr").unlink()


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert, admin client cert (system:masters), service-account keys."""
    pki.mkdir(mode=0o700, parents=True)
    # OpenSSL's req -x509 adds CA:TRUE, SKI and AKI itself; keyUsage we must ask for.
    _openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -sha256 "
        "-subj /CN=djk-local-ca -keyout ca.key -out ca.crt "
        "-addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=pki,
    )
    sans = [
        "IP:127.0.0.1",
        "IP:10.96.0.1",  # the `kubernetes` Service's cluster IP (first of SERVICE_CIDR)
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    serving = ["extendedKeyUsage=serverAuth", f"subjectAltName={','.join(sans)}"]
    _leaf(pki, "apiserver", "/CN=kube-apiserver", serving)
    _leaf(pki, "admin", "/O=system:masters/CN=djk-admin", ["extendedKeyUsage=clientAuth"])
    # kwok's kubelet endpoint: the API server dials the node's InternalIP, 127.0.0.1.
    _leaf(
        pki,
        "kubelet",
        f"/CN=system:node:{NODE_NAME}",
        ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1"],
    )
    # The API server's identity towards kubelets (the real node's checks it: webhook authn/authz).
    _leaf(
        pki,
        "apiserver-kubelet-client",
        f"/CN={KUBELET_CLIENT_USER}",
        ["extendedKeyUsage=clientAuth"],
    )
    _openssl(f"genpkey {EC_KEY} -out sa.key", cwd=pki)
    # The apiserver's verifying-key flag cannot read a PKCS#8 private key: give it the public one.
    _openssl("pkey -in sa.key -pubout -out sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str], name: str) -> None:
    """A self-contained kubeconfig (JSON is valid YAML; all embedded, so it can be copied)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "djk-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "djk-local", "user": name}}],
        "current-context": name,
        "preferences": {},
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(doc, indent=2) + "\n")


# -- a minimal admin client (stdlib only; the stack runs before any venv) -------------------------


class Api:
    """Just enough of the Kubernetes REST API, as admin, for bootstrap and health checks."""

    def __init__(self, port: int, pki: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(pki / "admin.crt", pki / "admin.key")

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 5.0,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=timeout
        )
        try:
            headers = {"Accept": "application/json", "Content-Type": content_type}
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            raw = response.read()
        except http.client.HTTPException as exc:
            raise OSError(f"{method} {path}: {exc!r}") from exc
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def ensure(self, collection: str, obj: dict[str, Any]) -> None:
        """Create `obj` under `collection`; an existing one is fine (up is idempotent)."""
        status, answer = self.call("POST", collection, obj)
        if status not in (200, 201, 409):
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise StackError(
                f"creating {obj['kind']} {obj['metadata']['name']}: {status} {message}"
            )

    def get(self, path: str) -> Any:
        status, answer = self.call("GET", path)
        return answer if status == 200 else None


# -- the components -----------------------------------------------------------------------------


def _step(log: Log, what: str, started: float) -> None:
    log(f"  {what}: {time.monotonic() - started:.1f}s")


def up(state_dir: Path, log: Log) -> dict[str, Any]:
    """Start everything and wait until a Deployment can roll out; returns the state to keep."""
    root = state_dir / "controlplane"
    logs = state_dir / "logs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    pki = root / "pki"
    binaries = find_binaries()
    ports = {
        "etcd": free_port(),
        "etcd-peer": free_port(),
        "kube-apiserver": free_port(),
        "kwok-kubelet": free_port(),
    }
    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    admin_kubeconfig = state_dir / "admin.kubeconfig"
    limited_kubeconfig = state_dir / "limited.kubeconfig"
    procs: list[Proc] = []

    try:
        started = time.monotonic()
        make_pki(pki)
        admin_user = {
            "client-certificate-data": _b64(pki / "admin.crt"),
            "client-key-data": _b64(pki / "admin.key"),
        }
        write_kubeconfig(admin_kubeconfig, server, pki / "ca.crt", admin_user, "djk-admin")
        # A static token user: the second identity needs no certificate, and a token is what
        # permission-error tests most often hold.
        limited_token = secrets.token_urlsafe(32)
        tokens = pki / "tokens.csv"
        tokens.touch(mode=0o600)
        tokens.write_text(f"{limited_token},{LIMITED_USER},{LIMITED_USER}\n")
        write_kubeconfig(
            limited_kubeconfig, server, pki / "ca.crt", {"token": limited_token}, LIMITED_USER
        )
        _step(log, "certificates and kubeconfigs", started)

        audit_policy, pod_logs = _prepare_logs(root, log)
        started = time.monotonic()
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        procs.append(
            spawn(
                "etcd",
                [
                    str(binaries.etcd),
                    "--name=node0",
                    f"--data-dir={root / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=node0={peer_url}",
                    "--unsafe-no-fsync=true",  # throwaway data: durability only costs time
                    "--log-level=warn",
                    "--quota-backend-bytes=2147483648",
                    "--auto-compaction-mode=periodic",
                    "--auto-compaction-retention=5m",
                ],
                logs / "etcd.log",
            )
        )
        wait_for("etcd /health", lambda: _etcd_healthy(ports["etcd"]), timeout=30, watch=procs)
        _step(log, "etcd", started)

        started = time.monotonic()
        procs.append(
            spawn(
                "kube-apiserver",
                [
                    str(binaries.kube_apiserver),
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-apiserver']}",
                    # No default route on these machines: without it the apiserver finds no address.
                    "--advertise-address=127.0.0.1",
                    # The 'kubernetes' Endpoints may not point at loopback; no reconciler needed.
                    "--endpoint-reconciler-type=none",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=Node,RBAC",
                    f"--enable-admission-plugins={ADMISSION_PLUGINS}",
                    f"--service-account-issuer={SA_ISSUER}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                    "--profiling=false",
                    # Pod logs: dial the node's InternalIP (kwok sets no resolvable Hostname)
                    # and check the kubelet's certificate instead of skipping verification.
                    "--kubelet-preferred-address-types=InternalIP",
                    f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                    # and authenticate to kubelets: a real one refuses anonymous requests.
                    f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                    f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                    f"--audit-policy-file={audit_policy}",
                    f"--audit-log-path={root / 'audit.log'}",
                    "--audit-log-format=json",
                ],
                logs / "kube-apiserver.log",
            )
        )
        api = Api(ports["kube-apiserver"], pki)
        wait_for(
            "kube-apiserver /readyz",
            lambda: api.call("GET", "/readyz")[0] == 200,
            timeout=90,
            watch=procs,
        )
        _step(log, "kube-apiserver", started)

        started = time.monotonic()
        _bootstrap_identities(api)
        _install_logs_crd(api, procs)
        _step(log, "RBAC identities and kwok's Logs CRD", started)

        started = time.monotonic()
        procs.append(
            spawn(
                "kube-controller-manager",
                [
                    str(binaries.kube_controller_manager),
                    f"--kubeconfig={admin_kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    # Signs the token Secrets / lets the serviceaccount-token controller run at all.
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    "--controllers=*",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    "--profiling=false",
                ],
                logs / "kube-controller-manager.log",
            )
        )
        procs.append(
            spawn(
                "kube-scheduler",
                [
                    str(binaries.kube_scheduler),
                    f"--kubeconfig={admin_kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    "--secure-port=0",
                    "--kube-api-qps=200",
                    "--kube-api-burst=400",
                    "--profiling=false",
                ],
                logs / "kube-scheduler.log",
            )
        )
        # Flags, not a KwokConfiguration document: v0.8.0 does not default one read with
        # --config (zero lease/stage parallelism, "node leases parallelism must be greater than
        # 0"). The lease makes kwok renew the node's Lease, which the node lifecycle controller
        # checks; --cidr keeps pod IPs out of the service range.
        procs.append(
            spawn(
                "kwok",
                [
                    str(binaries.kwok),
                    f"--kubeconfig={admin_kubeconfig}",
                    *(f"--config={p}" for p in sorted(KWOK_DIR.glob("*.yaml"))),
                    # Its own node only: with --manage-all-nodes it took over the real node's
                    # Lease once that kubelet stopped, and a dead kubelet looked Ready.
                    f"--manage-single-node={NODE_NAME}",
                    f"--cidr={POD_CIDR}",
                    "--node-lease-duration-seconds=40",
                    # The kubelet endpoint (logs): loopback only, since kwok checks no client
                    # certificate. The node stage copies IP and port into the node's status.
                    "--node-ip=127.0.0.1",
                    f"--node-port={ports['kwok-kubelet']}",
                    f"--server-address=127.0.0.1:{ports['kwok-kubelet']}",
                    f"--tls-cert-file={pki / 'kubelet.crt'}",
                    f"--tls-private-key-file={pki / 'kubelet.key'}",
                    # Logs objects are made per pod by stack/kwok/pod-logs.yaml: watched, not
                    # read once from --config.
                    "--enable-crds=Logs",
                ],
                logs / "kwok.log",
                # kwok also reads ~/.kwok/kwok.yaml: keep a stray personal config out of it.
                env={**os.environ, "HOME": str(root)},
                # Log file names in Logs objects are relative: to the prepared files.
                cwd=pod_logs,
            )
        )
        _create_node(api)
        wait_for(
            f"node {NODE_NAME} Ready, schedulable, with InternalIP 127.0.0.1 and kubelet port",
            lambda: _node_ready(api) and _node_serves_logs(api, ports["kwok-kubelet"]),
            timeout=60,
            watch=procs,
        )
        wait_for(
            "ServiceAccount default/default",
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            timeout=60,
            watch=procs,
        )
        _step(log, "controllers, scheduler, kwok and node", started)
    except BaseException:
        stop(procs)
        raise

    return {
        "recipe": RECIPE,
        "procs": procs,
        "ports": ports,
        "server": server,
        "pki": str(pki),
        "env": {
            "KUBECONFIG": str(admin_kubeconfig),
            "DJK_LIMITED_KUBECONFIG": str(limited_kubeconfig),
            "DJK_AUDIT_LOG": str(root / "audit.log"),
        },
    }


# Only pod log requests are recorded: tests read them to see what the deployer asked for
# (tailLines, previous, container) and how often; everything else stays out of the file.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {"level": "Metadata", "resources": [{"group": "", "resources": ["pods/log"]}]},
        {"level": "None"},
    ],
}

# kwok's Logs kind (kwok.x-k8s.io/v1alpha1, namespaced; kwok v0.8.0 ships the full schema in
# kustomize/crd/bases/). Only kwok reads these objects, so the schema is left open.
LOGS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "logs.kwok.x-k8s.io"},
    "spec": {
        "group": "kwok.x-k8s.io",
        "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs", "singular": "logs"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "subresources": {"status": {}},
            }
        ],
    },
}


def _prepare_logs(root: Path, log: Log) -> tuple[Path, Path]:
    """The audit policy file and the directory of prepared pod logs (kwok's working directory)."""
    started = time.monotonic()
    audit_policy = root / "audit-policy.json"
    audit_policy.write_text(json.dumps(AUDIT_POLICY, indent=2) + "\n")
    pod_logs = root / "pod-logs"
    podlogs.write_cri_files(pod_logs)
    _step(log, "audit policy and prepared pod logs", started)
    return audit_policy, pod_logs


def _install_logs_crd(api: Api, procs: list[Proc]) -> None:
    api.ensure("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", LOGS_CRD)
    wait_for(
        "CRD logs.kwok.x-k8s.io Established",
        lambda: _crd_established(api, LOGS_CRD["metadata"]["name"]),
        timeout=30,
        watch=procs,
    )


def _crd_established(api: Api, name: str) -> bool:
    crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = (crd or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _node_serves_logs(api: Api, port: int) -> bool:
    """The node's status points the API server at kwok's kubelet endpoint."""
    node = api.get(f"/api/v1/nodes/{NODE_NAME}") or {}
    status = node.get("status", {})
    addresses = {(a.get("type"), a.get("address")) for a in status.get("addresses") or []}
    endpoint = status.get("daemonEndpoints", {}).get("kubeletEndpoint", {})
    return ("InternalIP", "127.0.0.1") in addresses and endpoint.get("Port") == port


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status == 200 and json.loads(response.read()).get("health") == "true"
    except (http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


def _bootstrap_identities(api: Api) -> None:
    """The limited user (all rights in one namespace) and the fake DigitalOcean API's admin SA."""
    api.ensure(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LIMITED_NAMESPACE}},
    )
    api.ensure(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{LIMITED_NAMESPACE}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "everything", "namespace": LIMITED_NAMESPACE},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    api.ensure(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{LIMITED_NAMESPACE}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "everything", "namespace": LIMITED_NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "everything",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": LIMITED_USER}
            ],
        },
    )
    # What the API server may do on kubelets (logs, exec, port-forward, metrics).
    api.ensure(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": KUBELET_CLIENT_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:kubelet-api-admin",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": KUBELET_CLIENT_USER,
                }
            ],
        },
    )
    namespace, name = DEPLOYER_SERVICE_ACCOUNT
    api.ensure(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        },
    )
    api.ensure(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )


def _create_node(api: Api) -> None:
    api.ensure(
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {"capacity": NODE_RESOURCES, "allocatable": NODE_RESOURCES},
        },
    )
    # Status on create is kept today, but patch it too so kwok's "1k CPUs" default never wins.
    status, answer = api.call(
        "PATCH",
        f"/api/v1/nodes/{NODE_NAME}/status",
        {"status": {"capacity": NODE_RESOURCES, "allocatable": NODE_RESOURCES}},
        content_type="application/merge-patch+json",
    )
    if status != 200:
        raise StackError(f"setting node {NODE_NAME} resources: {status} {answer}")


def _node_ready(api: Api) -> bool:
    """Ready, and the controller-manager has lifted its not-ready taint (else pods stay Pending)."""
    node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    if not node:
        return False
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    taints = node.get("spec", {}).get("taints") or []
    return conditions.get("Ready") == "True" and not taints


def status(state: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each component and whether it answers (processes without a port: alive)."""
    procs = {str(p["name"]): p for p in state.get("procs", [])}
    ports = state.get("ports", {})
    pki = Path(state.get("pki", "/nonexistent"))
    result: list[tuple[str, bool]] = []
    for name in COMPONENTS:
        alive = name in procs and is_running(procs[name])
        if alive and name == "etcd":
            alive = _etcd_healthy(int(ports["etcd"]))
        elif alive and name == "kube-apiserver":
            try:
                alive = Api(int(ports["kube-apiserver"]), pki).call("GET", "/readyz")[0] == 200
            except OSError:
                alive = False
        result.append((name, alive))
    try:
        ready = _node_ready(Api(int(ports["kube-apiserver"]), pki))
    except (OSError, KeyError, ValueError):
        ready = False
    result.append((f"node/{NODE_NAME} Ready", ready))
    recipe = state.get("recipe", 1)
    result.append((f"made by the current recipe ({recipe}, current {RECIPE})", recipe == RECIPE))
    return result


def down(state_dir: Path) -> None:
    """Remove the control plane's runtime files (the processes are stopped by the caller)."""
    shutil.rmtree(state_dir / "controlplane", ignore_errors=True)
    for name in ("admin.kubeconfig", "limited.kubeconfig"):
        (state_dir / name).unlink(missing_ok=True)
