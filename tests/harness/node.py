"""A real node beside the kwok ones: kubelet + containerd + runc + CNI + kube-proxy, where App containers really run.

What runs (everything under `workdir`, nothing installed as a system service; recipe: shared/recipes/real-node.md):
- containerd (Debian's) with its own root, state and socket; runc through `runc-wrapper` (this directory), which
  clamps what root without CAP_SYS_RESOURCE may not set; the sandbox ("pause") image made from Debian's busybox
  (harness.rootfs) and imported, since nothing can be pulled from the internet.
- Registries: CRI `config_path` = `workdir/certs.d`, one `hosts.toml` per registry `trust_registry()` is given
  (plain HTTP, or HTTPS with the test CA); credentials come from the pods' imagePullSecrets, as on any node.
- CNI (Debian's containernetworking-plugins): bridge `wharf-cni0` + host-local (state under workdir) + portmap, pod
  range POD_CIDR: pods reach each other, and the node reaches pods (the kubelet's probes, tests' curl).
- kubelet (built from k8s.io/kubernetes at the control plane's version by tests/cluster/build-binaries.sh) on the
  cgroup v1 hierarchies (`failCgroupV1: false`, cgroupfs, no QoS cgroups), registered with the label and the
  NoSchedule taint NODE_LABEL=NODE_VALUE so that nothing lands here unless its namespace is placed here
  (`namespace_annotations()`); the test pull agent only touches kwok's nodes, so it leaves these pods alone.
- kube-proxy (same build), iptables mode: Service ClusterIPs work from the node and from pods.

How App pods get here: the apiserver's PodNodeSelector and PodTolerationRestriction admission plugins (enabled by
harness.controlplane) add the node selector and the toleration to every pod of an annotated namespace. That is how
a cluster admin dedicates nodes to a tenant (CF's isolation segments, per space), so wharf's rendering and the
App stay exactly as on any cluster: no test-only operator setting, and nothing in the Deployment for wharf's
drift correction (S17) to fight, since admission changes the pods, not the pod template.

One real node per machine (host iptables chains, the bridge and the Service range are machine-wide): a second one
fails with the holder's pid (NodeError), it does not skip. `stop()` removes every pod, container, shim, mount,
the bridge, iptables rules and the IPAM state, and puts ip_forward back.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shlex
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.controlplane import ControlPlane, ControlPlaneError, Proc, terminate_groups
from harness.polling import poll
from harness.ports import free_port
from harness.rootfs import busybox_layer

NODE_LABEL = "harness.wharf.dev/node"
NODE_VALUE = "real"
TAINT = {"key": NODE_LABEL, "value": NODE_VALUE, "effect": "NoSchedule"}
# The annotations PodNodeSelector and PodTolerationRestriction read (kube-apiserver admission plugins).
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"
POD_CIDR = "10.89.0.0/16"  # neither kwok's 10.244.0.0/16 nor the Service range 10.96.0.0/16
BRIDGE = "wharf-cni0"
CNI_NETWORK = "wharf-harness"
SANDBOX_IMAGE = "wharf.test/pause:1"
RUNC_WRAPPER = Path(__file__).with_name("runc-wrapper")
CNI_BIN_DIR = Path("/usr/lib/cni")
LOCK = Path(tempfile.gettempdir()) / "wharf-real-node.lock"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class NodeError(RuntimeError):
    """The real node cannot start on this machine (the message says why and what to install)."""


def namespace_annotations() -> dict[str, str]:
    """What puts a namespace's pods on the real node: every pod gets the node selector and the toleration."""
    toleration = {"key": NODE_LABEL, "operator": "Equal", "value": NODE_VALUE, "effect": "NoSchedule"}
    return {
        NODE_SELECTOR_ANNOTATION: f"{NODE_LABEL}={NODE_VALUE}",
        TOLERATIONS_ANNOTATION: json.dumps([toleration]),
    }


def _node_ip() -> str:
    """The address of the interface with the default route (the kubelet refuses a loopback node IP)."""
    out = subprocess.run(["ip", "-j", "route", "get", "1.1.1.1"], capture_output=True, text=True)
    try:
        return str(json.loads(out.stdout)[0]["prefsrc"])
    except (ValueError, IndexError, KeyError) as e:
        raise NodeError(f"no default route to take the node IP from ({out.stderr.strip() or e})") from e


def check_machine(bin_dir: Path) -> None:
    """Raise NodeError naming everything this machine lacks for a real node."""
    missing = [str(bin_dir / b) for b in ("kubelet", "kube-proxy", "kubectl") if not (bin_dir / b).is_file()]
    missing += [
        t for t in ("containerd", "containerd-shim-runc-v2", "ctr", "iptables", "ip", "mount") if not shutil.which(t)
    ]
    missing += [
        str(p)
        for p in (Path("/usr/sbin/runc"), *(CNI_BIN_DIR / p for p in ("bridge", "host-local", "portmap", "loopback")))
        if not p.exists()
    ]
    if missing:
        raise NodeError(
            f"the real node needs {', '.join(missing)}: apt-get install $(cat tests/harness/apt-packages.txt) and "
            "bash tests/cluster/build-binaries.sh"
        )
    if os.geteuid() != 0:
        raise NodeError("the real node needs root (kubelet, containerd and the CNI bridge)")
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        raise NodeError("no cgroup hierarchy mounted under /sys/fs/cgroup")


def sandbox_image_archive(path: Path) -> None:
    """A docker-archive tar of the sandbox image (busybox `sleep`), for `ctr images import`."""
    gz, diff_id = busybox_layer()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sleep", "2147483647"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    manifest = [{"Config": "config.json", "RepoTags": [SANDBOX_IMAGE], "Layers": ["layer.tar.gz"]}]
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("config.json", json.dumps(config).encode()),
            ("layer.tar.gz", gz),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class RealNode:
    """One real node registered with `control_plane` as `name`; `start()` returns once it is Ready."""

    def __init__(self, control_plane: ControlPlane, workdir: Path, name: str = "real-node-0") -> None:
        self.cp = control_plane
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.procs: list[Proc] = []
        self.ip = ""
        self.socket = self.workdir / "containerd" / "containerd.sock"
        self.runc_root = self.workdir / "runc"
        self.kubelet_root = self.workdir / "kubelet"
        self.hosts_dir = self.workdir / "certs.d"
        self._lock: int | None = None
        self._ip_forward_was: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> RealNode:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> RealNode:
        check_machine(self.cp.bin_dir)
        self._take_lock()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise NodeError(
                f"another real node runs on this machine (pid {holder or '?'}, lock {LOCK}): one at a time, since "
                "the CNI bridge, iptables chains and Service range are machine-wide; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock = fd

    def _spawn(self, name: str, args: list[str]) -> Proc:
        proc = self.cp.spawn(f"node-{name}", args)
        self.cp.procs.remove(proc)  # this node stops its own processes, in its own order
        self.procs.append(proc)
        return proc

    def _wait(self, what: str, ok: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if not p.alive():
                    raise NodeError(f"{p.name} exited ({p.popen.returncode}) waiting for {what}:\n{p.tail(40)}")
            with contextlib.suppress(Exception):
                if ok():
                    return
            time.sleep(0.3)
        tails = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in self.procs)
        raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")

    def _start(self, timeout: float) -> None:
        self.ip = _node_ip()
        for d in ("containerd", "cni", "cni-ipam", "certs.d", "kubelet", "pod-logs", "volume-plugins"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        if not os.access(RUNC_WRAPPER, os.X_OK):
            raise NodeError(f"{RUNC_WRAPPER} is not executable (git keeps its mode: chmod +x it)")
        self._ip_forward_was = IP_FORWARD.read_text().strip()
        IP_FORWARD.write_text("1")  # a Service's DNAT from one pod to another on the bridge is forwarded
        self._write_cni()
        self._spawn("containerd", ["containerd", "--config", str(self._write_containerd_config())])
        self._wait("containerd's socket", lambda: self.ctr("version", check=False).returncode == 0, timeout)
        archive = self.workdir / "pause.tar"
        sandbox_image_archive(archive)
        self.ctr("images", "import", str(archive))

        kubelet_kubeconfig = self.cp.client_kubeconfig(f"system:node:{self.name}", "system:nodes")
        self._spawn(
            "kubelet",
            [
                str(self.cp.bin_dir / "kubelet"),
                f"--config={self._write_kubelet_config()}",
                f"--kubeconfig={kubelet_kubeconfig}",
                f"--root-dir={self.kubelet_root}",
                f"--cert-dir={self.workdir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.ip}",
                f"--node-labels={NODE_LABEL}={NODE_VALUE}",
                "--v=1",
            ],
        )
        self._wait(f"node {self.name} Ready", self._ready, timeout)

        proxy_kubeconfig = self.cp.client_kubeconfig("system:kube-proxy")
        healthz = f"127.0.0.1:{free_port()}"
        self._spawn(
            "kube-proxy",
            [
                str(self.cp.bin_dir / "kube-proxy"),
                f"--kubeconfig={proxy_kubeconfig}",
                f"--hostname-override={self.name}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_CIDR}",
                f"--healthz-bind-address={healthz}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                "--conntrack-max-per-core=0",  # no CAP to resize the machine's conntrack table: leave it
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                "--iptables-localhost-nodeports=false",
                "--v=1",
            ],
        )
        self._wait("kube-proxy healthz", lambda: _http_status(f"http://{healthz}/healthz") == 200, timeout)

    # -- configuration ---------------------------------------------------------------------------------------
    def _write_cni(self) -> None:
        conflist = {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.workdir / "cni" / "10-wharf-harness.conflist").write_text(json.dumps(conflist, indent=2))

    def _write_containerd_config(self) -> Path:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{self.workdir / "containerd" / "root"}"
state = "{self.workdir / "containerd" / "state"}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.workdir / "containerd" / "opt"}"
[{cri}]
  sandbox_image = "{SANDBOX_IMAGE}"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{RUNC_WRAPPER}"
  Root = "{self.runc_root}"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{self.workdir / "cni"}"
  max_conf_num = 1
[{cri}.registry]
  config_path = "{self.hosts_dir}"
"""
        path = self.workdir / "containerd" / "config.toml"
        path.write_text(text)
        return path

    def _write_kubelet_config(self) -> Path:
        serving = self.workdir / "kubelet-pki"
        serving.mkdir(exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            # cgroup v1 hierarchies, as this machine has them (the recipe's settings)
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            # the apiserver (logs, exec, port-forward) authenticates with its client cert from the cluster CA
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cp.ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "registerWithTaints": [TAINT],
            "serializeImagePulls": False,
            # a shared CI disk must not put the node under pressure or GC the images of running tests
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "resolvConf": "/etc/resolv.conf",
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
            "fileCheckFrequency": "5s",
        }
        path = self.workdir / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def trust_registry(self, server: Any) -> None:
        """Let containerd pull from `server` (a harness.registry.RegistryServer): plain HTTP, or HTTPS trusting the
        test CA. containerd reads certs.d on every pull, so a registry added later needs no restart."""
        url = server.url
        lines = [f'server = "{url}"', "", f'[host."{url}"]', '  capabilities = ["pull", "resolve"]']
        if server.tls and server.ca_file is not None:
            lines.append(f'  ca = "{server.ca_file}"')
        directory = self.hosts_dir / server.host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text("\n".join(lines) + "\n")

    # -- state -----------------------------------------------------------------------------------------------
    def ctr(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def _ready(self) -> bool:
        out = self.cp.kubectl("get", "node", self.name, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.procs)

    # -- clean-up --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Everything this node made goes: pods (so the kubelet tears their sandboxes down through CNI), the
        kubelet, kube-proxy and its iptables rules, leftover containers and shims, containerd, every mount under
        workdir, the bridge; ip_forward as it was; the machine lock."""
        kubelet = next((p for p in self.procs if p.name == "node-kubelet" and p.alive()), None)
        if kubelet is not None:
            with contextlib.suppress(ControlPlaneError, subprocess.TimeoutExpired):
                self.cp.kubectl(
                    "delete", "pods", "-A", "--field-selector", f"spec.nodeName={self.name}",
                    "--force", "--grace-period=0", "--wait=false", check=False, timeout=20,
                )  # fmt: skip
                poll(lambda: not self._running_tasks(), 20, 0.5)
        for name in ("node-kube-proxy", "node-kubelet"):
            for p in [p for p in self.procs if p.name == name]:
                terminate_groups([p.popen.pid])
                self.procs.remove(p)
        if (self.cp.bin_dir / "kube-proxy").is_file():
            subprocess.run([str(self.cp.bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, timeout=60)
        self._kill_containers()
        for p in list(self.procs):  # containerd
            terminate_groups([p.popen.pid])
            self.procs.remove(p)
        self._kill_shims()
        _remove_stale_shim_sockets()
        self._unmount_all()
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        self._remove_cni_nat_rules()
        _remove_kube_chains()
        shutil.rmtree(self.workdir / "cni-ipam", ignore_errors=True)
        _remove_pod_log_links(self.workdir / "pod-logs")
        if self._ip_forward_was is not None:
            with contextlib.suppress(OSError):
                IP_FORWARD.write_text(self._ip_forward_was)
            self._ip_forward_was = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _running_tasks(self) -> list[str]:
        out = self.ctr("tasks", "ls", check=False, timeout=10)
        return [line.split()[0] for line in out.stdout.splitlines()[1:] if "RUNNING" in line]

    def _kill_containers(self) -> None:
        if not self.runc_root.is_dir():
            return
        for namespace in self.runc_root.iterdir():
            runc = ["/usr/sbin/runc", "--root", str(namespace)]
            out = subprocess.run([*runc, "list", "-q"], capture_output=True, text=True)
            for cid in out.stdout.split():
                subprocess.run([*runc, "kill", "--all", cid, "KILL"], capture_output=True)
                subprocess.run([*runc, "delete", "--force", cid], capture_output=True)

    def _kill_shims(self) -> None:
        """containerd-shim-runc-v2 processes outlive containerd (they reparent to init): end ours, found by the
        containerd address on their command line."""
        address = str(self.socket)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and address.encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), 9)

    def _unmount_all(self) -> None:
        prefix = str(self.workdir)
        for _ in range(3):
            mounts = [
                line.split()[4].encode().decode("unicode_escape")
                for line in Path("/proc/self/mountinfo").read_text().splitlines()
            ]
            ours = sorted({m for m in mounts if m == prefix or m.startswith(prefix + "/")}, key=len, reverse=True)
            if not ours:
                return
            for mount in ours:
                if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "-l", mount], capture_output=True)

    def _remove_cni_nat_rules(self) -> None:
        """The bridge plugin's ipMasq rules of a container that was killed without a CNI DEL (comment names the
        network): remove them and the CNI-* chains they jump to."""
        out = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True)
        for rule in out.stdout.splitlines():
            if f'name: \\"{CNI_NETWORK}\\"' in rule or f'name: "{CNI_NETWORK}"' in rule:
                args = shlex.split(rule)
                chain = args[args.index("-j") + 1] if "-j" in args else ""
                subprocess.run(["iptables", "-t", "nat", "-D", *args[1:]], capture_output=True)
                if chain.startswith("CNI-"):
                    subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
                    subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)


def _remove_stale_shim_sockets() -> None:
    """containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir; a killed shim leaves its socket.
    Remove those nothing listens on any more (a live containerd's shims answer, so theirs stay)."""
    directory = Path("/run/containerd/s")
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        with socket.socket(socket.AF_UNIX) as s, contextlib.suppress(OSError):
            try:
                s.connect(str(path))
            except ConnectionRefusedError:
                path.unlink()


def _remove_kube_chains() -> None:
    """The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, in both IP families) and whatever kube-proxy
    --cleanup left: rules jumping to a KUBE-* chain go, then the chains. One real node per machine (LOCK), so every
    KUBE-* chain here is this node's."""
    for binary in ("iptables", "ip6tables"):
        if not shutil.which(binary):
            continue
        for table in ("filter", "nat", "mangle"):
            out = subprocess.run([binary, "-t", table, "-S"], capture_output=True, text=True)
            rules = out.stdout.splitlines()
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for rule in rules:
                args = shlex.split(rule)  # comments are quoted: "kubernetes service portals"
                target = args[args.index("-j") + 1] if "-j" in args else ""
                if args[:1] == ["-A"] and not args[1].startswith("KUBE-") and target.startswith("KUBE-"):
                    subprocess.run([binary, "-t", table, "-D", *args[1:]], capture_output=True)
            for chain in chains:
                subprocess.run([binary, "-t", table, "-F", chain], capture_output=True)
            for chain in chains:
                subprocess.run([binary, "-t", table, "-X", chain], capture_output=True)


def _remove_pod_log_links(pod_logs: Path) -> None:
    """The kubelet links /var/log/containers/*.log to its pod logs: drop the links that point into ours."""
    links = Path("/var/log/containers")
    if not links.is_dir():
        return
    for link in links.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(str(pod_logs)):
                link.unlink()


def _http_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as r:
        return int(r.status)
