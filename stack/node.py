"""The stack's real node: a kubelet, kube-proxy and a containerd of its own beside kwok.

kwok imitates a kubelet; this one is the real thing, so the status sequences, messages and logs
the deployer judges can be checked against what a cluster really shows. Everything is built from
the Go module proxy (`scripts/build-binaries node`) or Debian (nftables); nothing is pulled.

- containerd (the one the Docker engines use, run a second time with its own root, state and
  sockets) with CRI on, runc from the stack, `restrict_oom_score_adj` (root here lacks
  CAP_SYS_RESOURCE), netns mounts under its state dir.
- Pod network: bridge `djkpod0` 10.88.0.1/16, made before the kubelet (the node IP may not be
  loopback, so it is this address), CNI bridge + host-local with `isGateway: false`, forwarding
  on for that bridge only (never the global `ip_forward`), pods get a route to the Service range
  via the bridge address and NO default route.
- Guard (not optional): nftables table `inet djk_guard` drops and counts anything forwarded from
  the pod bridge to another interface (`pod_egress`) and anything leaving through an interface
  other than the bridge or loopback for a private-range address (`host_private`) - kwok's fake
  pod IPs behind a Service get DNATed there by kube-proxy. The machine's own resolvers
  (/etc/resolv.conf) stay reachable on port 53.
- kubelet: cgroupfs driver, cgroup root `/djk-node` (made in every mounted hierarchy), cgroup v1
  tolerated, swap tolerated; serving cert signed by the stack's CA; webhook authn/authz (the API
  server presents `kube-apiserver-kubelet-client`); registered with the taint and label below.
- kube-proxy in nftables mode, NodePorts on the bridge address only, conntrack sysctls untouched.

One real node per machine (kube-proxy's nftables table has a fixed name): the claim in
/run/djk-node/claim.json says which state dir holds it and what the machine looked like before
(host paths, sysctls), so `down` - even after a failed `up` - puts it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from stack import (
    REPO_ROOT,
    Log,
    Proc,
    StackError,
    _stat,
    binary_paths,
    controlplane,
    free_port,
    is_running,
    spawn,
    stop,
    wait_for,
)

NODE_NAME = "djk-real-node"
LABEL_KEY = "djk.local/real-node"
TAINT = {"key": LABEL_KEY, "value": "true", "effect": "NoSchedule"}
BRIDGE = "djkpod0"
BRIDGE_IP = "10.88.0.1"
POD_SUBNET = "10.88.0.0/16"
CNI_NETWORK = "djk-pods"
GUARD_TABLE = "djk_guard"
KUBE_PROXY_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))
PRIVATE_RANGES = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")
RUN_DIR = Path("/run/djk-node")
CLAIM = RUN_DIR / "claim.json"
CGROUP_ROOT = "djk-node"
PAUSE_IMAGE = "djk.local/pause:3.10-djk"
CRI_NAMESPACE = "k8s.io"
# Written by the kubelet, containerd or CNI whatever their flags say.
HOST_PATHS = ("/var/log/containers", "/var/lib/kubelet", "/var/lib/cni")
# Where every containerd's shims put their sockets (the Docker engines' too): only our sockets
# are removed, and the directories only if we made them and they are empty.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
# What the kubelet (kernel tunables) and kube-proxy may change machine-wide: put back on down.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
    "net/bridge/bridge-nf-call-iptables",
)
COMPONENTS = ("containerd", "coredns", "kubelet", "kube-proxy")
CLUSTER_DOMAIN = "cluster.local"
COREDNS_USER = "djk-coredns"
APT_PACKAGES = {"nft": "nftables"}


def namespace_annotations() -> dict[str, str]:
    """The annotations that put a namespace's pods on the real node, manifests untouched.

    The API server's PodNodeSelector admission plugin merges the node selector into every pod of
    the namespace, PodTolerationRestriction adds the toleration for the node's taint. Without
    them pods stay on kwok's node: the taint keeps everything else off the real one."""
    return {
        "scheduler.alpha.kubernetes.io/node-selector": f"{LABEL_KEY}=true",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
            [{"key": LABEL_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
        ),
    }


# -- small helpers ------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, what: str, timeout: float = 60, check: bool = True) -> str:
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: no answer from {argv[0]} within {timeout:.0f}s") from exc
    except OSError as exc:
        raise StackError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    if check and result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise StackError(f"{what} failed (exit {result.returncode}): {last}")
    return result.stdout


def _nft(*args: str, check: bool = True, stdin: str | None = None) -> str:
    argv = ["nft", *args] if stdin is None else ["nft", "-f", "-"]
    if stdin is None:
        return _run(argv, what=f"nft {' '.join(args)}", check=check)
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise StackError(f"nft -f (the guard table) failed: {result.stderr.strip()}")
    return result.stdout


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys", name).write_text(value + "\n")


def _mounts_under(*prefixes: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            found.append(point)
    return found


def _unmount_under(*prefixes: Path) -> None:
    """Deepest first; what stays busy is detached lazily (it goes once its last user does)."""
    for _ in range(3):
        points = _mounts_under(*prefixes)
        if not points:
            return
        for point in sorted(set(points), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _cgroup_mounts() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, named ones, and a v2 one if any)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    return [Path(f.split()[1]) for f in lines if f.split()[2] in ("cgroup", "cgroup2")]


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


# -- the claim: one real node per machine, and what to put back -----------------------------------


def _load_claim() -> dict[str, Any] | None:
    try:
        claim = json.loads(CLAIM.read_text())
    except (OSError, ValueError):
        return None
    return claim if isinstance(claim, dict) else None


def _claim_alive(claim: dict[str, Any]) -> bool:
    return any(is_running(p) for p in claim.get("procs", []))


def _check_claim(state_dir: Path) -> dict[str, Any] | None:
    """The machine's claim, unless a live node of another stack holds it (then: why, in one line)."""
    claim = _load_claim()
    if claim is not None and claim.get("state_dir") != str(state_dir) and _claim_alive(claim):
        raise StackError(
            f"another stack ({claim.get('state_dir')}) runs the real node on this machine "
            "(one per machine: kube-proxy's nftables table has a fixed name); stop it with "
            f"DJK_STACK_DIR={claim.get('state_dir')} scripts/stack down, or pass --skip node"
        )
    return claim


def _make_claim(state_dir: Path) -> dict[str, Any]:
    claim = _check_claim(state_dir)
    if claim is not None:
        # A dead or earlier node's leftovers go first, with what it recorded of the machine.
        cleanup(claim)
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    claim = {
        "state_dir": str(state_dir),
        "procs": [],
        "host_paths_absent": [p for p in HOST_PATHS if not os.path.lexists(p)],
        "shim_dirs_absent": [
            str(d) for d in (SHIM_SOCKET_DIR, SHIM_SOCKET_DIR.parent) if not d.exists()
        ],
        "sysctls": {n: v for n in SYSCTLS if (v := _read_sysctl(n)) is not None},
        "cgroups": [],
    }
    _save_claim(claim)
    return claim


def _save_claim(claim: dict[str, Any]) -> None:
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = CLAIM.with_suffix(".tmp")
    tmp.write_text(json.dumps(claim, indent=2) + "\n")
    os.replace(tmp, CLAIM)


# -- up -----------------------------------------------------------------------------------------


def preflight(state_dir: Path, log: Log) -> None:
    """Reasons the node cannot start, each in one line, before anything is made."""
    if os.geteuid() != 0:
        raise StackError(
            "the real node needs root (bridge, nftables, cgroups, mounts); "
            "run scripts/stack as root or pass --skip node"
        )
    if not _cgroup_mounts():
        raise StackError("the real node needs cgroups, and none is mounted under /sys/fs/cgroup")
    if shutil.which("nft") is None:
        log("node: installing nftables (Debian) for kube-proxy's nftables mode and the guard")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nftables"],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                raise StackError(f"{' '.join(argv)} failed: {result.stderr.strip()[-300:]}")
    if shutil.which("nft") is None:
        raise StackError("nft not found (Debian package nftables)")
    _check_claim(state_dir)


def _binaries(log: Log) -> dict[str, Path]:
    paths = binary_paths()
    k8s = Path(paths["K8S_BIN_DIR"])
    found = {
        "kubelet": k8s / "kubelet",
        "kube-proxy": k8s / "kube-proxy",
        "containerd": Path(paths["CONTAINERD_BIN_DIR"]) / "containerd",
        "shim": Path(paths["CONTAINERD_BIN_DIR"]) / "containerd-shim-runc-v2",
        "runc": Path(paths["RUNC_BIN"]),
        "ctr": Path(paths["CTR_BIN"]),
        "cni": Path(paths["CNI_BIN_DIR"]),
        "pause": Path(paths["PAUSE_BIN"]),
        "coredns": Path(paths["COREDNS_BIN"]),
    }
    if not all(p.exists() for p in found.values()):
        script = REPO_ROOT / "scripts" / "build-binaries"
        log("node: building its binaries (scripts/build-binaries node; minutes when cold)")
        result = subprocess.run([str(script), "node"], stdout=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise StackError(f"{script} node failed (exit {result.returncode}); see above")
    missing = [str(p) for p in found.values() if not p.exists()]
    if missing:
        raise StackError(f"not built: {', '.join(missing)}; run scripts/build-binaries node")
    return found


def _step(log: Log, what: str, started: float) -> None:
    log(f"  node: {what}: {time.monotonic() - started:.1f}s")


def up(state_dir: Path, cp: dict[str, Any], log: Log) -> dict[str, Any]:
    """Start the real node against the running control plane; returns the state to keep."""
    began = time.time()
    started = time.monotonic()
    preflight(state_dir, log)
    binaries = _binaries(log)
    _step(log, "preflight and binaries", started)
    claim = _make_claim(state_dir)
    root = state_dir / "node"
    _unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    pki = Path(cp["pki"])
    server = str(cp["server"])
    api = controlplane.Api(int(cp["ports"]["kube-apiserver"]), pki)
    procs: list[Proc] = claim["procs"]
    info: dict[str, Any] = {"procs": procs, "root": str(root)}

    started = time.monotonic()
    _certificates(pki, root, server)
    _step(log, "certificates and kubeconfigs", started)

    started = time.monotonic()
    _guard()
    _bridge()
    claim["cgroups"] = _cgroups()
    _save_claim(claim)
    _step(log, f"guard table, bridge {BRIDGE} {BRIDGE_IP}, cgroup root /{CGROUP_ROOT}", started)

    started = time.monotonic()
    procs.append(_containerd(state_dir, root, binaries))
    _save_claim(claim)
    wait_for(
        "the node's containerd",
        lambda: _containerd_answers(binaries),
        timeout=60,
        watch=procs,
        interval=0.2,
    )
    _import_pause(root, binaries)
    _step(log, "containerd and the pause image", started)

    started = time.monotonic()
    procs.append(_coredns(state_dir, root, binaries, api))
    _save_claim(claim)
    wait_for(
        f"CoreDNS on {BRIDGE_IP}:53 answering kubernetes.default.svc.{CLUSTER_DOMAIN}",
        lambda: dns_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}") == controlplane.SERVICE_IP,
        timeout=60,
        watch=procs,
        interval=0.25,
    )
    _step(log, "CoreDNS", started)

    started = time.monotonic()
    healthz = free_port()
    procs.append(_kubelet(state_dir, root, pki, binaries, healthz))
    info["kubelet_healthz"] = healthz
    _save_claim(claim)
    proxy_healthz = free_port()
    procs.append(_kube_proxy(state_dir, root, binaries, proxy_healthz))
    info["kube_proxy_healthz"] = proxy_healthz
    _save_claim(claim)
    wait_for(
        f"node {NODE_NAME} Ready, tainted {LABEL_KEY}",
        lambda: node_ready(api, since=began),
        timeout=120,
        watch=procs,
        interval=0.25,
    )
    wait_for(
        "kube-proxy's nftables table",
        lambda: (
            "table ip kube-proxy" in _nft("list", "tables", check=False) and _healthz(proxy_healthz)
        ),
        timeout=60,
        watch=procs,
    )
    _step(log, "kubelet, kube-proxy and node Ready", started)
    return info


def _certificates(pki: Path, root: Path, server: str) -> None:
    # Signed by the control plane's CA, in its pki directory (a new control plane, a new node).
    controlplane._leaf(
        pki,
        "node-serving",
        f"/O=system:nodes/CN=system:node:{NODE_NAME}",
        ["extendedKeyUsage=serverAuth", f"subjectAltName=IP:{BRIDGE_IP},DNS:{NODE_NAME}"],
    )
    controlplane._leaf(
        pki,
        "node-client",
        f"/O=system:nodes/CN=system:node:{NODE_NAME}",
        ["extendedKeyUsage=clientAuth"],
    )
    controlplane._leaf(pki, "kube-proxy", "/CN=system:kube-proxy", ["extendedKeyUsage=clientAuth"])
    controlplane._leaf(pki, "coredns", f"/CN={COREDNS_USER}", ["extendedKeyUsage=clientAuth"])
    for key in pki.glob("*.key"):
        key.chmod(0o600)
    for name in ("node-client", "kube-proxy", "coredns"):
        user = {
            "client-certificate-data": controlplane._b64(pki / f"{name}.crt"),
            "client-key-data": controlplane._b64(pki / f"{name}.key"),
        }
        controlplane.write_kubeconfig(
            root / f"{name}.kubeconfig", server, pki / "ca.crt", user, name
        )


def _resolvers() -> list[str]:
    """The machine's own IPv4 resolvers: the guard must not cut this machine's DNS."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and words[1].count(".") == 3:
            found.append(words[1])
    return found


def guard_rules() -> str:
    resolvers = _resolvers()
    dns = (
        f"    ip daddr {{ {', '.join(resolvers)} }} meta l4proto {{ tcp, udp }} th dport 53 accept\n"
        if resolvers
        else ""
    )
    return (
        f"table inet {GUARD_TABLE} {{\n"
        f"  counter pod_egress {{ }}\n"
        f"  counter host_private {{ }}\n"
        # Of those, the ones kube-proxy DNATed to kwok's fake pod IPs (a Service backed by kwok).
        f"  counter kwok_pods {{ }}\n"
        f"  set private4 {{ type ipv4_addr; flags interval; "
        f"elements = {{ {', '.join(PRIVATE_RANGES)} }} }}\n"
        f"  chain forward {{\n"
        f"    type filter hook forward priority -10; policy accept;\n"
        f'    iifname "{BRIDGE}" oifname != "{BRIDGE}" ip daddr {controlplane.POD_CIDR} '
        f'counter name "kwok_pods"\n'
        f'    iifname "{BRIDGE}" oifname != "{BRIDGE}" counter name "pod_egress" drop\n'
        f"  }}\n"
        # postrouting: the interface a packet really leaves by, after kube-proxy's DNAT.
        f"  chain postrouting {{\n"
        f"    type filter hook postrouting priority -10; policy accept;\n"
        f'    oifname {{ "lo", "{BRIDGE}" }} accept\n'
        f"{dns}"
        f'    ip daddr {controlplane.POD_CIDR} counter name "kwok_pods"\n'
        f'    ip daddr @private4 counter name "host_private" drop\n'
        f"  }}\n"
        f"}}\n"
    )


def _guard() -> None:
    _nft("delete", "table", "inet", GUARD_TABLE, check=False)
    _nft(stdin=guard_rules())


def guard_counters() -> dict[str, int]:
    """Packets the guard dropped so far: {"pod_egress": n, "host_private": n}."""
    out = _nft("-j", "list", "counters", "table", "inet", GUARD_TABLE)
    counts = {}
    for item in json.loads(out).get("nftables", []):
        counter = item.get("counter")
        if counter:
            counts[counter["name"]] = int(counter["packets"])
    return counts


def _bridge() -> None:
    if not _link_exists(BRIDGE):
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"], what=f"creating bridge {BRIDGE}")
    _run(["ip", "addr", "replace", f"{BRIDGE_IP}/16", "dev", BRIDGE], what="bridge address")
    _run(["ip", "link", "set", BRIDGE, "up"], what=f"ip link set {BRIDGE} up")
    # Forwarding for packets arriving on this bridge only (pod -> Service -> pod); the global
    # switch stays as it was, and the guard drops whatever would leave the bridge.
    _write_sysctl(f"net/ipv4/conf/{BRIDGE}/forwarding", "1")


def _cgroups() -> list[str]:
    """The kubelet's cgroup root in every hierarchy (cpuset needs cpus and mems to take tasks)."""
    made = []
    for mount in _cgroup_mounts():
        path = mount / CGROUP_ROOT
        path.mkdir(exist_ok=True)
        made.append(str(path))
        for name in ("cpuset.cpus", "cpuset.mems"):
            parent = mount / name
            if parent.exists() and (path / name).exists():
                (path / name).write_text(parent.read_text().strip() + "\n")
    return made


def _containerd(state_dir: Path, root: Path, binaries: dict[str, Path]) -> Proc:
    cni_conf = root / "cni-conf"
    _write(
        cni_conf / "10-djk-pods.conflist",
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": CNI_NETWORK,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        # isGateway would turn on the global ip_forward: the address is ours.
                        "isGateway": False,
                        "isDefaultGateway": False,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(root / "cni-ipam"),
                            "ranges": [
                                [
                                    {
                                        "subnet": POD_SUBNET,
                                        "rangeStart": "10.88.1.1",
                                        "rangeEnd": "10.88.255.254",
                                        "gateway": BRIDGE_IP,
                                    }
                                ]
                            ],
                            # The Service range only: no default route out of a pod.
                            "routes": [{"dst": controlplane.SERVICE_CIDR, "gw": BRIDGE_IP}],
                        },
                    }
                ],
            },
            indent=2,
        )
        + "\n",
    )
    config = root / "containerd.toml"
    croot = root / "containerd"
    _write(
        config,
        f"""version = 3
root = "{croot}"
state = "{RUN_DIR / "containerd"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.nri.v1.nri",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
  "io.containerd.image-verifier.v1.bindir",
]

[grpc]
  address = "{RUN_DIR / "containerd.sock"}"

[ttrpc]
  address = "{RUN_DIR / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{croot / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{root / "certs.d"}"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{binaries["cni"]}"]
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "{binaries["runc"]}"
      Root = "{RUN_DIR / "runc"}"
      SystemdCgroup = false
""",
    )
    path = os.pathsep.join(
        [str(binaries["containerd"].parent), str(binaries["runc"].parent), os.environ["PATH"]]
    )
    return spawn(
        "containerd",
        [str(binaries["containerd"]), "--config", str(config)],
        state_dir / "logs" / "node-containerd.log",
        env={**os.environ, "PATH": path},
    )


def _ctr(binaries: dict[str, Path], *args: str, check: bool = True, timeout: float = 60) -> str:
    argv = [
        str(binaries["ctr"]),
        "--address",
        str(RUN_DIR / "containerd.sock"),
        "--namespace",
        CRI_NAMESPACE,
        *args,
    ]
    try:
        return _run(argv, what=f"ctr {' '.join(args)}", timeout=timeout, check=check)
    except StackError:
        if check:
            raise
        return ""


def image_archive(files: dict[str, Path], ref: str, config: dict[str, Any]) -> bytes:
    """A FROM-scratch image in `docker save` layout: `files` (path in image -> host file, all
    executable) as one layer, `config` as the image config (Entrypoint, User, ...)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for arcname, source in sorted(files.items()):
            info = tar.gettarinfo(str(source), arcname=arcname)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "", ""
            info.mtime = 0
            with source.open("rb") as data:
                tar.addfile(info, data)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config_bytes = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_id}.json", "RepoTags": [ref], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, payload in (
            (f"{diff_id}/layer.tar", layer_bytes),
            (f"{config_id}.json", config_bytes),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive.getvalue()


def import_image(archive: bytes, scratch: Path) -> None:
    """Import an image archive into the node's containerd (CRI namespace): how images get onto
    the real node without a registry."""
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_bytes(archive)
    try:
        _ctr(_binaries(lambda _: None), "images", "import", str(scratch), timeout=300)
    finally:
        scratch.unlink(missing_ok=True)


def _containerd_answers(binaries: dict[str, Path]) -> bool:
    try:
        _ctr(binaries, "version", timeout=10)
    except StackError:
        return False
    return True


def _import_pause(root: Path, binaries: dict[str, Path]) -> None:
    archive = image_archive(
        {"pause": binaries["pause"]},
        PAUSE_IMAGE,
        {"Entrypoint": ["/pause"], "User": "65535:65535"},
    )
    import_image(archive, root / "pause-image.tar")


def _yaml(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"  # JSON is YAML; the components read either


def _coredns(state_dir: Path, root: Path, binaries: dict[str, Path], api: controlplane.Api) -> Proc:
    """Cluster DNS on the host, on the bridge address only: cluster.local from the API server,
    nothing else (no forwarding: names outside the cluster are not this machine's to resolve)."""
    rbac = "rbac.authorization.k8s.io"
    api.ensure(
        f"/apis/{rbac}/v1/clusterroles",
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
    )
    api.ensure(
        f"/apis/{rbac}/v1/clusterrolebindings",
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_USER},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": COREDNS_USER},
            "subjects": [{"apiGroup": rbac, "kind": "User", "name": COREDNS_USER}],
        },
    )
    corefile = root / "Corefile"
    _write(
        corefile,
        f""".:53 {{
    bind {BRIDGE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {root / "coredns.kubeconfig"}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""",
    )
    return spawn(
        "coredns",
        [str(binaries["coredns"]), "-conf", str(corefile)],
        state_dir / "logs" / "node-coredns.log",
        cwd=root,
    )


def dns_query(name: str, server: str = BRIDGE_IP, timeout: float = 1.0) -> str | None:
    """The first A record for `name` from `server`, or None (stdlib only: one UDP query)."""
    query_id = int.from_bytes(os.urandom(2), "big")
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    packet = query_id.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    packet += question + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (server, 53))
            answer = sock.recv(512)
        except OSError:
            return None
    if len(answer) < 12 or answer[:2] != packet[:2] or answer[3] & 0x0F != 0:
        return None
    count = int.from_bytes(answer[6:8], "big")
    offset = 12 + len(question) + 5
    for _ in range(count):
        if answer[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while answer[offset]:
                offset += answer[offset] + 1
            offset += 1
        rtype = int.from_bytes(answer[offset : offset + 2], "big")
        length = int.from_bytes(answer[offset + 8 : offset + 10], "big")
        data = answer[offset + 10 : offset + 10 + length]
        if rtype == 1 and length == 4:
            return ".".join(str(b) for b in data)
        offset += 10 + length
    return None


def _kubelet(
    state_dir: Path, root: Path, pki: Path, binaries: dict[str, Path], healthz: int
) -> Proc:
    resolv = root / "resolv.conf"
    # Pods get no resolver of this machine's (they could not reach it anyway).
    _write(resolv, "")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": BRIDGE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "tlsCertFile": str(pki / "node-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "node-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{RUN_DIR / 'containerd.sock'}",
        "podLogsDir": str(root / "pod-logs"),
        "resolvConf": str(resolv),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [BRIDGE_IP],
        "registerWithTaints": [TAINT],
        # Renewed every quarter of this: 2.5 s. The first renewal fails until the Node exists
        # (the Lease is owned by it), so this is most of the time `up` waits for the node.
        "nodeLeaseDurationSeconds": 10,
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        # Lowering its own OOM score needs CAP_SYS_RESOURCE, which root lacks here.
        "oomScoreAdj": 0,
        "maxPods": 50,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "staticPodPath": "",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }
    config_path = root / "kubelet.yaml"
    _write(config_path, _yaml(config))
    return spawn(
        "kubelet",
        [
            str(binaries["kubelet"]),
            f"--config={config_path}",
            f"--kubeconfig={root / 'node-client.kubeconfig'}",
            f"--root-dir={root / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={BRIDGE_IP}",
            f"--node-labels={LABEL_KEY}=true",
            "--v=1",
        ],
        state_dir / "logs" / "node-kubelet.log",
    )


def _kube_proxy(state_dir: Path, root: Path, binaries: dict[str, Path], healthz: int) -> Proc:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(root / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_SUBNET,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # NodePorts on the bridge address only, never on this machine's real interfaces.
        "nodePortAddresses": [f"{BRIDGE_IP}/32"],
        # Pod -> Service -> pod on the same bridge: replies come back through us.
        "masqueradeAll": True,
        "oomScoreAdj": 0,
        # Zeros: leave this machine's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    config_path = root / "kube-proxy.yaml"
    _write(config_path, _yaml(config))
    return spawn(
        "kube-proxy",
        [str(binaries["kube-proxy"]), f"--config={config_path}", "--v=1"],
        state_dir / "logs" / "node-kube-proxy.log",
    )


def _healthz(port: int) -> bool:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _timestamp(value: str | None) -> float:
    """Seconds since the epoch of an API timestamp (RFC 3339, UTC), 0 when absent."""
    if not value:
        return 0.0
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def node_ready(api: controlplane.Api, *, since: float = 0.0, lease_within: float = 0.0) -> bool:
    """Ready, tainted and labelled as ours, and said so by a live kubelet: a Ready heartbeat and
    a Lease renewal at or after `since` (up: this kubelet, not the last one's stale status), or
    a Lease renewed within `lease_within` seconds (status: the kubelet renews it every 10 s)."""
    node = api.get(f"/api/v1/nodes/{NODE_NAME}")
    if not node:
        return False
    conditions = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
    ready = conditions.get("Ready", {})
    taints = node.get("spec", {}).get("taints") or []
    labels = node.get("metadata", {}).get("labels") or {}
    if not (
        ready.get("status") == "True"
        and TAINT in [{k: t.get(k) for k in ("key", "value", "effect")} for t in taints]
        and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)
        and labels.get(LABEL_KEY) == "true"
    ):
        return False
    # Heartbeats have whole seconds.
    if since and _timestamp(ready.get("lastHeartbeatTime")) < int(since):
        return False
    lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE_NAME}")
    renewed = _timestamp(((lease or {}).get("spec") or {}).get("renewTime"))
    if since and renewed < since:
        return False
    return not lease_within or time.time() - renewed <= lease_within


def _delete_node_object(cp: dict[str, Any] | None) -> None:
    """The Node object goes with the node (its pods are then collected, nothing looks Ready)."""
    if not cp or "ports" not in cp:
        return
    with contextlib.suppress(OSError, KeyError, ValueError):
        api = controlplane.Api(int(cp["ports"]["kube-apiserver"]), Path(cp["pki"]))
        api.call("DELETE", f"/api/v1/nodes/{NODE_NAME}")


# -- status and down ------------------------------------------------------------------------------


def status(state_dir: Path, state: dict[str, Any], cp: dict[str, Any]) -> list[tuple[str, bool]]:
    procs = {str(p["name"]): p for p in state.get("procs", [])}
    result = []
    for name in COMPONENTS:
        alive = name in procs and is_running(procs[name])
        if alive and name == "kubelet":
            alive = _healthz(int(state.get("kubelet_healthz", 0)))
        elif alive and name == "kube-proxy":
            alive = _healthz(int(state.get("kube_proxy_healthz", 0)))
        elif alive and name == "coredns":
            alive = dns_query(f"kubernetes.default.svc.{CLUSTER_DOMAIN}") is not None
        result.append((f"{name} alive", alive))
    try:
        api = controlplane.Api(int(cp["ports"]["kube-apiserver"]), Path(cp["pki"]))
        ready = node_ready(api, lease_within=40)
    except (OSError, KeyError, ValueError):
        ready = False
    result.append((f"node/{NODE_NAME} Ready (real kubelet)", ready))
    try:
        guarded = "pod_egress" in guard_counters()
    except (StackError, ValueError):
        guarded = False
    result.append((f"nftables guard inet {GUARD_TABLE}", guarded))
    return result


def down(state_dir: Path, cp: dict[str, Any] | None = None) -> None:
    """Remove everything the node made, if this state dir holds the machine's claim; with the
    control plane's state, its Node object too (once the kubelet is stopped)."""
    claim = _load_claim()
    if claim is not None and claim.get("state_dir") == str(state_dir):
        cleanup(claim)
    else:
        # Not ours (or nothing): still remove our own files.
        _unmount_under(state_dir / "node")
        shutil.rmtree(state_dir / "node", ignore_errors=True)
    _delete_node_object(cp)


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL pids found in our cgroup root or carrying our containerd's address; wait."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)


def _cgroup_pids(paths: Sequence[str]) -> list[int]:
    pids: set[int] = set()
    for base in paths:
        for procs in Path(base).rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def node_processes() -> list[int]:
    """Processes started for our containerd (its shims outlive it): ours by the unique socket
    address in their argv."""
    marker = f"\0{RUN_DIR / 'containerd.sock'}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes() + b"\0":
                    pids.append(int(entry.name))
    return pids


def _shim_sockets() -> list[Path]:
    """The shims' sockets (under /run/containerd/s, shared with every containerd): ours are
    the ones our bundles' bootstrap.json name."""
    found = []
    for bootstrap in (RUN_DIR / "containerd").glob(
        "io.containerd.runtime.v2.task/*/*/bootstrap.json"
    ):
        with contextlib.suppress(OSError, ValueError, KeyError):
            address = str(json.loads(bootstrap.read_text())["address"])
            if address.startswith(f"unix://{SHIM_SOCKET_DIR}/"):
                found.append(Path(address.removeprefix("unix://")))
    return found


def cleanup(claim: dict[str, Any]) -> None:
    """Stop the node's processes and undo what it made, using what the claim recorded."""
    state_dir = Path(str(claim.get("state_dir")))
    procs: list[Proc] = claim.get("procs", [])
    cgroups = claim.get("cgroups") or [str(m / CGROUP_ROOT) for m in _cgroup_mounts()]
    # kube-proxy, CoreDNS and the kubelet first; containers outlive the kubelet, so what runs in
    # our cgroup root is killed, then containerd stops, then its shims (found by its address).
    stop([p for p in procs if p["name"] != "containerd"])
    _kill_pids(_cgroup_pids(cgroups))
    sockets = _shim_sockets()
    stop([p for p in procs if p["name"] == "containerd"])
    _kill_pids(node_processes())
    for sock in sockets:
        sock.unlink(missing_ok=True)
    _unmount_under(state_dir / "node", RUN_DIR)
    # Network: kube-proxy's tables, the bridge (its veths went with the pods' namespaces), guard
    # last, once nothing is left that it protects against.
    for family, table in KUBE_PROXY_TABLES:
        _nft("delete", "table", family, table, check=False)
    if _link_exists(BRIDGE):
        _run(["ip", "link", "delete", BRIDGE], what=f"deleting bridge {BRIDGE}", check=False)
    for link in Path("/sys/class/net").iterdir():
        # veths whose pod namespace is gone vanish with it; one still attached is ours too.
        master = link / "master"
        if master.exists() and master.resolve().name == BRIDGE:
            _run(["ip", "link", "delete", link.name], what="veth", check=False)
    _nft("delete", "table", "inet", GUARD_TABLE, check=False)
    # cgroups: deepest first (a cgroup dir is removed with rmdir, and only once empty).
    for base in cgroups:
        path = Path(base)
        if path.exists():
            for sub in sorted(
                (p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                path.rmdir()
    for name, value in claim.get("sysctls", {}).items():
        if _read_sysctl(name) != value:
            _write_sysctl(name, value)
    for path in claim.get("host_paths_absent", []):
        _unmount_under(Path(path))
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)
    for directory in claim.get("shim_dirs_absent", []):
        with contextlib.suppress(OSError):
            Path(directory).rmdir()
    _unmount_under(state_dir / "node")
    shutil.rmtree(state_dir / "node", ignore_errors=True)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
