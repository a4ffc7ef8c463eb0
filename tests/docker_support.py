"""Real Docker engines for tests: offline test images, cleanup, and a second engine.

Nothing here pulls from a registry. The test images are built from the host's static busybox and
loaded; the second engine is a real ``dockerd`` in its own network namespace (so it cannot touch
the default engine's ``docker0``), and killing it is a real host failure.

Observed with Docker 20.10 (no live-restore); tests built on a restart should know:

* ``SecondEngine.kill()`` SIGKILLs dockerd; its containerd dies with it, but the containers keep
  running under their shims. The socket file stays behind with nobody listening, so every request
  to ``url`` fails at once with "connection refused" (ECONNREFUSED, no timeout to wait out).
* ``restart()`` then answers within about a second, and dockerd stops every container it finds
  still running (that is what no live-restore means; one that ignores SIGTERM holds the restart
  up for its stop timeout, 10 s by default, which the test image does not): containers without a restart policy and
  ``unless-stopped`` ones end ``exited`` with code 0 (the test image exits cleanly on SIGTERM);
  ``always`` ones are started again.
* ``kill(whole_host=True)`` also kills containerd, the shims and the containers (a power cut).
  After ``restart()`` containers without a restart policy are ``exited`` with code 255;
  ``always`` and ``unless-stopped`` ones are running again.
* PID 1 on these machines does not reap orphans, so processes of a killed engine stay behind as
  zombies (no command line, no resources). ``SecondEngine`` copes with that.
"""
from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import glob
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import docker

from tests.support import poll

TEST_IMAGE = "berth-test/httpd:1"
TEST_IMAGE_V2 = "berth-test/httpd:2"
BLOB_SIZE = 1024 * 1024
MANAGED_LABEL = "berth.managed"  # Berth's own label on the containers it creates
API_VERSION = "1.41"
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"

_APPLETS = ("sh", "httpd", "sleep", "ls", "cat", "echo", "wc", "head")
# busybox httpd as PID 1 ignores SIGTERM (the kernel drops default-action signals for PID 1), so
# `docker stop` would wait its whole timeout. A shell that traps TERM makes the container stop at
# once with exit code 0, like a well-behaved server.
_CMD = ["/bin/sh", "-c",
        "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 80 -h /www & wait"]
_MTIME = 1_700_000_000  # fixed, so the archive and hence the image id are reproducible


# --- the engine -----------------------------------------------------------------------------

def default_engine_url() -> str:
    return os.environ.get("BERTH_TEST_DOCKER_URL", DEFAULT_ENGINE_URL)


def connect(url: str, timeout: int = 30) -> docker.DockerClient:
    return docker.DockerClient(base_url=url, version=API_VERSION, timeout=timeout)


def ping(url: str, timeout: float = 2.0) -> bool:
    """True if the engine at a ``unix://`` (or ``tcp://``/``http://``) URL answers ``/_ping``."""
    try:
        with _open_socket(url, timeout) as sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]
    except OSError:
        return False


def _open_socket(url: str, timeout: float) -> socket.socket:
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(url[len("unix://"):])
        except OSError:
            sock.close()
            raise
        return sock
    hostport = url.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def require_engine(url: str | None = None) -> None:
    """Fail loudly (never skip) when the Docker engine the tests need is not there."""
    url = url or default_engine_url()
    problem = None
    if not ping(url, timeout=5):
        problem = "does not answer /_ping"
    else:
        try:
            client = connect(url, timeout=10)
            try:
                api = client.version()["ApiVersion"]
            finally:
                client.close()
            if tuple(int(p) for p in api.split(".")) < (1, 41):
                problem = f"speaks API {api}; the tests need 1.41 or newer"
        except Exception as exc:  # noqa: BLE001 - any failure here means "not usable"
            problem = f"failed to report its version: {exc!r}"
    if problem:
        raise RuntimeError(
            f"Docker engine at {url} {problem}. The Docker tests need a real engine: "
            "`apt-get install -y docker.io busybox-static iproute2`, then "
            "`nohup dockerd >/var/log/berth-dockerd.log 2>&1 &` and wait for `docker info` "
            "(.ci/run does both), or point BERTH_TEST_DOCKER_URL at an engine.")


def remove_berth_containers(client: docker.DockerClient) -> int:
    """Force-remove every container labelled ``berth.managed`` (any value); returns how many."""
    removed = 0
    for summary in client.api.containers(all=True, filters={"label": MANAGED_LABEL}):
        try:
            client.api.remove_container(summary["Id"], force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass  # gone meanwhile
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
    return removed


# --- test images ----------------------------------------------------------------------------

def static_busybox() -> Path:
    """The host's statically linked busybox (package busybox-static)."""
    for candidate in ("/usr/bin/busybox", "/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    raise RuntimeError("no static busybox at /usr/bin/busybox or /bin/busybox: "
                       "`apt-get install -y busybox-static` (the test images are built from it)")


def _is_static_elf(path: Path) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) is statically linked."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
            return False
        order = "little" if head[5] == 1 else "big"
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize:i * phentsize + 4], order) == 3:  # PT_INTERP
            return False
    return True


def image_root_tar(version: int) -> bytes:
    """The root filesystem of test image ``version`` as an (uncompressed) tar."""
    busybox = static_busybox().read_bytes()
    files = {
        "www/index.html": f"<html><body>berth test image v{version}</body></html>\n".encode(),
        "www/version": f"{version}\n".encode(),
        "www/blob": (bytes(range(256)) * (BLOB_SIZE // 256 + 1))[:BLOB_SIZE],
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name, kind=tarfile.DIRTYPE, mode=0o755, data=b"", target=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, _MTIME, target
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("bin")
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox)
        for applet in _APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, target="busybox")
        add("tmp", mode=0o1777)
        add("www")
        for name, data in files.items():
            add(name, tarfile.REGTYPE, 0o644, data)
    return out.getvalue()


def image_archive(version: int, ref: str) -> tuple[bytes, str]:
    """Test image ``version`` as a ``docker save`` archive tagged ``ref``, and its image id.

    Every field is fixed (file times, ``created``), so the id is the same on every engine and
    every run: it names the recipe, and loading it twice changes nothing.
    """
    layer = image_root_tar(version)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_MTIME))
    config = json.dumps({
        "architecture": _ARCH.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "created": created,
        "config": {"Cmd": _CMD, "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/",
                   "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": created, "created_by": "tests/docker_support.py"}],
    }, sort_keys=True).encode()
    digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{digest}.json", "RepoTags": [ref],
                            "Layers": ["layer/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((f"{digest}.json", config), ("layer/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue(), f"sha256:{digest}"


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}


def build_test_images(client: docker.DockerClient) -> None:
    """Make sure TEST_IMAGE and TEST_IMAGE_V2 exist on this engine, built from this recipe.

    Offline: loads a ``docker save`` archive made here (nothing is pulled). The image id is
    deterministic, so an image already under the tag with that id is kept, and anything else
    under the tag (an older recipe) is replaced. Safe in several processes at once: each load
    stores the same content and sets the tag to the same id.
    """
    for version, ref in ((1, TEST_IMAGE), (2, TEST_IMAGE_V2)):
        archive, image_id = image_archive(version, ref)
        try:
            if client.api.inspect_image(ref)["Id"] == image_id:
                continue
        except docker.errors.ImageNotFound:
            pass
        for message in client.api.load_image(archive):
            if "error" in message:
                raise RuntimeError(f"loading {ref} failed: {message['error']}")
        if client.api.inspect_image(ref)["Id"] != image_id:
            raise RuntimeError(f"loading {ref} gave another image id than {image_id}")


# --- a second engine ------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_MNT_DETACH = 2


class SecondEngine:
    """A second real Docker engine on this machine, in its own network namespace.

    Lives in ``/tmp/be-<6 hex>`` (short, because a unix socket path is limited to 108 bytes and
    containerd's sockets live below it) in network namespace ``be-<6 hex>``. Containers publish
    ports on that namespace's 127.0.0.1, so tests see them through the SDK, not over TCP.

    ``with SecondEngine() as engine: engine.client().containers.run(...)``
    """

    START_TIMEOUT = 60.0

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else Path(f"/tmp/be-{secrets.token_hex(3)}")
        self.name = self.root.name  # the network namespace's name
        if len(str(self.socket_path)) > 100:
            raise ValueError(f"{self.root} is too long for the engine's unix sockets")
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._closed = False

    # -- addresses
    @property
    def socket_path(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def netns_path(self) -> Path:
        return Path("/var/run/netns") / self.name

    @property
    def pid(self) -> int | None:
        """dockerd's pid while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return connect(self.url, timeout=timeout)

    def ping(self, timeout: float = 2.0) -> bool:
        return ping(self.url, timeout)

    # -- life cycle
    def start(self) -> "SecondEngine":
        if self._closed:
            raise RuntimeError("this SecondEngine was closed")
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        # an empty config of its own: never pick up /etc/docker/daemon.json (its "hosts" would
        # clash with -H, its data-root with ours)
        (self.root / "daemon.json").write_text("{}\n")
        if not self.netns_path.exists():
            _run("ip", "netns", "add", self.name)
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        atexit.register(self.close)  # no stray engine even if the test process dies of an error
        try:
            self._spawn()
            build_test_images(self.client())
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self) -> None:
        (self.root / "pid").unlink(missing_ok=True)  # a stale pidfile whose pid got reused
        # dockerd adopts the containerd named in this pidfile if that pid exists. After a kill
        # that containerd is dead, but possibly an unreaped zombie (PID 1 here does not reap),
        # which dockerd takes for alive: it then waits for a socket nobody serves and gives up.
        containerd_pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        try:
            if not _alive(int(containerd_pidfile.read_text().strip())):
                containerd_pidfile.unlink()
        except (OSError, ValueError):
            pass
        self._log = open(self.root / "dockerd.log", "ab")
        # `ip netns exec` would hide the cgroup mounts; nsenter only switches the network
        # namespace and then execs dockerd, so the Popen's pid is dockerd's own
        self._proc = subprocess.Popen(
            ["nsenter", f"--net={self.netns_path}", "dockerd",
             "--config-file", str(self.root / "daemon.json"),
             "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "pid"),
             "-H", self.url],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

        def answers() -> bool:
            if self._proc.poll() is not None:
                raise RuntimeError(f"second dockerd exited with {self._proc.returncode}:\n"
                                   f"{self.log_tail()}")
            return self.ping(timeout=1)
        poll(answers, timeout=self.START_TIMEOUT, interval=0.05,
             what="the second dockerd to answer", details=self.log_tail, error=RuntimeError)

    def kill(self, whole_host: bool = False) -> None:
        """SIGKILL dockerd: the engine is gone at once (its containerd dies with it).

        Containers keep running under their shims unless ``whole_host``: then containerd, the
        shims and every container process are killed as well, like a power cut.
        """
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if whole_host:
            self._kill_leftovers()

    def restart(self) -> None:
        """Start dockerd again on the same data after ``kill()``; returns once it answers."""
        if self.pid is not None:
            raise RuntimeError("second dockerd is still running; kill() it first")
        self._spawn()

    def close(self) -> None:
        """Stop the engine and remove every trace: processes, mounts, netns, folder."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self.pid is not None:
            try:  # containers first: dockerd would otherwise stop each one on its way out
                client = self.client(timeout=15)
                for summary in client.api.containers(all=True):
                    client.api.remove_container(summary["Id"], force=True, v=True)
                client.close()
            except Exception:  # noqa: BLE001 - the hard cleanup below catches everything
                pass
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._kill_leftovers()
        self._unmount_all()
        if self.netns_path.exists():
            _run("ip", "netns", "delete", self.name, check=False)
        if self._log:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "SecondEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers
    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "dockerd.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[int]:
        """Pids of this engine's processes: dockerd, containerd, shims, docker-proxy."""
        marker = str(self.root) + "/"
        netns = _netns_inode(self.netns_path)
        own = os.getpid()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == own:
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                if marker.encode() in cmdline:
                    found.append(int(entry))
                elif netns and cmdline and os.readlink(f"/proc/{entry}/ns/net") == netns:
                    found.append(int(entry))
            except OSError:
                continue  # exited meanwhile, or a kernel thread
        return found

    def container_ids(self) -> list[str]:
        folder = self.root / "data" / "containers"
        return sorted(os.listdir(folder)) if folder.is_dir() else []

    def _container_cgroups(self) -> list[str]:
        folders = []
        for cid in self.container_ids():
            folders += glob.glob(f"/sys/fs/cgroup/*/docker/{cid}")  # cgroup v1, cgroupfs driver
            folders += glob.glob(f"/sys/fs/cgroup/docker/{cid}")  # cgroup v2
        return folders

    def _kill_leftovers(self) -> None:
        for _ in range(50):
            victims = set(self.processes())
            for folder in self._container_cgroups():
                try:
                    victims.update(int(p) for p in Path(folder, "cgroup.procs").read_text().split())
                except OSError:
                    pass
            victims.discard(os.getpid())
            if not victims:
                break
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for folder in self._container_cgroups():  # docker removes them only on a clean stop
            try:
                os.rmdir(folder)
            except OSError:
                pass

    def _unmount_all(self) -> None:
        marker = str(self.root)
        for _ in range(10):
            points = [p for p in _mount_points() if p == marker or p.startswith(marker + "/")]
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                _libc.umount2(point.encode(), _MNT_DETACH)


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            points.append(point.encode().decode("unicode_escape"))  # \040 for spaces and such
    return points


def _alive(pid: int) -> bool:
    """True for a running process; False for none or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _netns_inode(path: Path) -> str | None:
    try:
        return f"net:[{os.stat(path).st_ino}]"
    except OSError:
        return None


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result
