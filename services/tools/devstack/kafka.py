"""Run a real Apache Kafka broker (KRaft, one node: broker + controller) as a plain JVM.

The jars come from Maven Central through ``infra/kafka/pom.xml`` (see :func:`ensure_jars`);
no Docker engine is needed. Everything a node owns lives under its ``run_dir``::

    run_dir/server.properties   written on every start
    run_dir/cluster.id          KRaft cluster id, kept across restarts
    run_dir/data/               log.dirs (formatted once; data survives stop/start)
    run_dir/logs/server.log     broker log (infra/kafka/log4j.properties)
    run_dir/kafka.out           JVM stdout/stderr
    run_dir/kafka.pid           pid of the running broker

Only 127.0.0.1 is used (``localhost`` may resolve to ``::1``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from services.tools.devstack.kafka_auth import BrokerAuth

KAFKA_VERSION = "3.9.2"
"""Kafka release run locally; must match ``kafka.version`` in infra/kafka/pom.xml."""

HOST = "127.0.0.1"
_READY_LINE = "Kafka Server started"
_POM = Path("infra", "kafka", "pom.xml")
_TAIL_LINES = 40
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers started by this process, kept so they can be reaped (no zombies, no warnings)."""


class KafkaStartError(RuntimeError):
    """The broker could not be prepared, or did not become ready in time."""


@dataclass(frozen=True)
class KafkaNode:
    """A running local broker."""

    bootstrap: str
    pid: int
    run_dir: Path
    log_file: Path


# --------------------------------------------------------------------------- jars


def _default_repo_root() -> Path:
    """The checkout holding infra/kafka/pom.xml: this file's repo, else cwd or a parent."""
    here = Path(__file__).resolve().parents[3]
    for candidate in (here, Path.cwd(), *Path.cwd().parents):
        if (candidate / _POM).is_file():
            return candidate
    raise KafkaStartError(f"cannot find {_POM} above {here} or {Path.cwd()}")


def lib_dir(repo_root: Path) -> Path:
    """Folder the Maven build copies the broker's runtime jars into."""
    return repo_root / "infra" / "kafka" / "target" / f"kafka-{KAFKA_VERSION}" / "lib"


def _jars_present(lib: Path) -> bool:
    return (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


def ensure_jars(repo_root: Path) -> Path:
    """Return the lib dir, running ``mvn package`` first if it lacks the Kafka jar.

    (A missing or empty dir lacks it.) A file lock serialises concurrent callers, e.g.
    pytest-xdist workers; ``-Dkafka.version`` keeps the pom on :data:`KAFKA_VERSION`.
    """
    lib = lib_dir(repo_root)
    if _jars_present(lib):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaStartError("Maven (mvn) is not on PATH: cannot resolve the Kafka jars")
    target = lib.parents[1]
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".mvn.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _jars_present(lib):
            cmd = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(repo_root / _POM),
                f"-Dkafka.version={KAFKA_VERSION}",
                "package",
            ]
            done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, check=False)
            if done.returncode != 0 or not _jars_present(lib):
                raise KafkaStartError(
                    f"{' '.join(cmd)} failed (exit {done.returncode}):\n"
                    f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
                )
    return lib


# ---------------------------------------------------------------------- processes


def _pid_file(run_dir: Path) -> Path:
    return run_dir / "kafka.pid"


def _log_file(run_dir: Path) -> Path:
    return run_dir / "logs" / "server.log"


def _ps(pid: int, field: str) -> str:
    done = subprocess.run(
        ["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def _cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' if gone; briefly '' right after an exec)."""
    proc = Path("/proc", str(pid))
    if not proc.is_dir():
        return _ps(pid, "command")
    try:
        return proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except FileNotFoundError:
        return _ps(pid, "stat").startswith("Z")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (reaping it if we started it)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_our_broker(pid: int, run_dir: Path) -> bool:
    """Whether ``pid`` is a live java running kafka.Kafka on this run_dir's config."""
    config = str(run_dir / "server.properties")
    child = _CHILDREN.get(pid)
    if child is not None:
        return isinstance(child.args, list) and config in child.args and _alive(pid)
    if not _alive(pid):
        return False
    cmd = _cmdline(pid)
    return "java" in cmd and "kafka.Kafka" in cmd and config in cmd


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int(_pid_file(run_dir).read_text().strip())
    except (OSError, ValueError):
        return None


def _bootstrap_from_config(run_dir: Path) -> str:
    for line in (run_dir / "server.properties").read_text().splitlines():
        if line.startswith("advertised.listeners="):
            return line.split("://", 1)[1].split(",", 1)[0]
    raise KafkaStartError(f"no advertised.listeners in {run_dir / 'server.properties'}")


def is_running(run_dir: Path) -> KafkaNode | None:
    """The broker whose pid is in ``run_dir/kafka.pid``, if it is alive; else None."""
    run_dir = run_dir.resolve()
    pid = _read_pid(run_dir)
    if pid is None or not _is_our_broker(pid, run_dir):
        return None
    return KafkaNode(_bootstrap_from_config(run_dir), pid, run_dir, _log_file(run_dir))


def stop_kafka(run_dir: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the broker, SIGKILL it after ``timeout`` s; True if one was running.

    The pid file is removed; data and logs stay under ``run_dir``.
    """
    run_dir = run_dir.resolve()
    pid = _read_pid(run_dir)
    running = pid is not None and _is_our_broker(pid, run_dir)
    if pid is not None and running:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10.0):
                raise KafkaStartError(f"Kafka pid {pid} survived SIGKILL")
    _pid_file(run_dir).unlink(missing_ok=True)
    return running


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


# ------------------------------------------------------------------------- config


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _server_properties(
    run_dir: Path,
    port: int,
    controller_port: int,
    *,
    node_id: int = 1,
    voters: str | None = None,
    replication: int = 1,
    auth: BrokerAuth | None = None,
) -> str:
    """A combined broker + controller. One node by default; in a cluster (`voters` names
    every controller) internal topics are replicated `replication` times and need a
    majority of them in sync, as the service topics do."""
    min_isr = str(min(2, replication))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters or f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(run_dir / "data"),
        "num.partitions": "1",
        "default.replication.factor": str(replication),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replication),
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": str(replication),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": "2097152",
        "auto.create.topics.enable": "false",
    }
    if replication > 1:
        # a killed broker is noticed (fenced, out of the ISRs, leaders moved) after 4 s
        # rather than the default 9 s: loopback has no network to be patient with
        settings["broker.heartbeat.interval.ms"] = "500"
        settings["broker.session.timeout.ms"] = "4000"
    if auth is not None:  # SASL listeners and ACLs (kafka_auth.py)
        settings |= auth.properties(HOST, port, controller_port)
    lines = [f"{key}={value}" for key, value in settings.items()]
    header = "# Written by services/tools/devstack/kafka.py on each start.\n"
    return header + "\n".join(lines) + "\n"


def _cluster_id(run_dir: Path) -> str:
    """The cluster id kept in ``run_dir/cluster.id`` (a new Kafka-style Uuid if absent)."""
    path = run_dir / "cluster.id"
    if path.is_file():
        return path.read_text().strip()
    while True:  # Kafka's Uuid: base64url, no padding, must not start with '-'
        cid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            break
    path.write_text(cid + "\n")
    return cid


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaStartError("java is not on PATH (Java 17 is needed)")
    return found


def _format_storage(
    run_dir: Path, lib: Path, repo_root: Path, auth: BrokerAuth | None = None
) -> None:
    """Format ``run_dir/data`` once; a formatted dir is never formatted again."""
    if (run_dir / "data" / "meta.properties").is_file():
        return
    tools_log4j = (repo_root / "infra" / "kafka" / "tools-log4j.properties").as_uri()
    arguments = [
        "-Xmx256m",
        f"-Dlog4j.configuration={tools_log4j}",
        "-cp",
        f"{lib}/*",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        _cluster_id(run_dir),
        "-c",
        str(run_dir / "server.properties"),
        *(auth.format_arguments() if auth is not None else []),
    ]
    # The SCRAM passwords go to the JVM in an argument file readable by its owner only (the
    # java launcher expands `@file`): on the command line, `ps` would show them to anyone.
    argfile = run_dir / "format.args"
    fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(_quoted(a) for a in arguments) + "\n")
    try:
        done = subprocess.run([_java(), f"@{argfile}"], capture_output=True, text=True, check=False)
    finally:
        argfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise KafkaStartError(f"kafka storage format failed:\n{done.stdout}{done.stderr}")


def _quoted(argument: str) -> str:
    """One argument of a java `@file`: in double quotes, backslashes and quotes escaped."""
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -------------------------------------------------------------------------- start


def _launch(run_dir: Path, lib: Path, repo_root: Path, heap_mb: int) -> subprocess.Popen[bytes]:
    log4j = (repo_root / "infra" / "kafka" / "log4j.properties").as_uri()
    cmd = [
        _java(),
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseSerialGC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={run_dir / 'logs'}",
        f"-Dlog4j.configuration={log4j}",
        "-cp",
        f"{lib}/*",
        "kafka.Kafka",
        str(run_dir / "server.properties"),
    ]
    with (run_dir / "kafka.out").open("wb") as out:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=run_dir,
            start_new_session=True,
        )


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def _failure(run_dir: Path, reason: str) -> KafkaStartError:
    return KafkaStartError(
        f"Kafka in {run_dir} {reason}\n--- tail of {_log_file(run_dir)} ---\n"
        f"{_tail(_log_file(run_dir))}\n--- tail of {run_dir / 'kafka.out'} ---\n"
        f"{_tail(run_dir / 'kafka.out')}"
    )


def _log_says_started(log_file: Path, offset: int) -> bool:
    """Whether ``_READY_LINE`` was logged after ``offset`` (from 0 if the log rolled)."""
    try:
        with log_file.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(offset if size >= offset else 0)
            return _READY_LINE.encode() in f.read()
    except OSError:
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _port_of(node: KafkaNode) -> int:
    return int(node.bootstrap.rsplit(":", 1)[1])


def _wait_ready(node: KafkaNode, log_offset: int | None, timeout: float) -> None:
    """Wait for the client port and, from ``log_offset`` on, the "started" log line.

    ``log_offset=None``: a broker we did not just launch; only the port is awaited and it
    is left running on timeout. One we launched is stopped on timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not _alive(node.pid):
            _pid_file(node.run_dir).unlink(missing_ok=True)
            raise _failure(node.run_dir, f"exited during start-up (pid {node.pid})")
        if _port_open(_port_of(node)) and (
            log_offset is None or _log_says_started(node.log_file, log_offset)
        ):
            return
        if time.monotonic() >= deadline:
            if log_offset is None:
                raise _failure(node.run_dir, f"not serving {node.bootstrap} after {timeout} s")
            stop_kafka(node.run_dir, timeout=5.0)
            raise _failure(node.run_dir, f"not ready after {timeout} s (stopped it)")
        time.sleep(0.1)


def start_kafka(
    run_dir: Path,
    *,
    port: int = 9092,
    controller_port: int = 9093,
    heap_mb: int = 512,
    repo_root: Path | None = None,
    timeout: float = 60.0,
    auth: BrokerAuth | None = None,
) -> KafkaNode:
    """Start (or find) the one-node broker of ``run_dir`` and wait until it serves clients.

    Idempotent: if ``run_dir/kafka.pid`` names this run_dir's live broker, it is returned
    once its client port accepts connections (the port arguments are then ignored).
    ``port=0`` picks free ports for both the client and the controller listener;
    ``controller_port=0`` picks the controller's only. Raises :class:`KafkaStartError`
    (with the log's tail) if the JVM dies or ``timeout`` passes; on timeout a JVM this call
    launched is stopped. With `auth`, the node takes SASL logins only and enforces ACLs
    (services/tools/devstack/kafka_auth.py).
    """
    run_dir = run_dir.resolve()
    existing = is_running(run_dir)
    if existing is not None:
        _wait_ready(existing, None, timeout)
        return existing
    root = repo_root.resolve() if repo_root is not None else _default_repo_root()
    lib = ensure_jars(root)
    if port == 0:
        port, controller_port = _free_ports(2)
    elif controller_port == 0:
        controller_port = _free_ports(1)[0]
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    _pid_file(run_dir).unlink(missing_ok=True)
    config = run_dir / "server.properties"
    config.touch(mode=0o600)  # with auth it holds the node's own password
    config.chmod(0o600)
    config.write_text(_server_properties(run_dir, port, controller_port, auth=auth))
    _format_storage(run_dir, lib, root, auth)
    log_file = _log_file(run_dir)
    log_offset = log_file.stat().st_size if log_file.is_file() else 0
    proc = _launch(run_dir, lib, root, heap_mb)
    _CHILDREN[proc.pid] = proc
    _pid_file(run_dir).write_text(f"{proc.pid}\n")
    node = KafkaNode(f"{HOST}:{port}", proc.pid, run_dir, log_file)
    _wait_ready(node, log_offset, timeout)
    return node


# ------------------------------------------------------------------------ cluster


@dataclass(frozen=True)
class ClusterNode:
    """One node of a local cluster: its id, directory and ports (kept across restarts)."""

    node_id: int
    run_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


class KafkaCluster:
    """A KRaft cluster of `size` nodes on loopback, each a combined broker + controller,
    with replication `size` and `min.insync.replicas` 2; for fault tests that lose a node.

    Each node lives in ``run_dir/node-<id>`` (as a one-node broker does in its run_dir),
    on ports picked at random once and kept, so a restarted node is where clients expect
    it. :meth:`stop` stops every node; use the cluster as a context manager so that
    happens even when the test fails.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        size: int = 3,
        heap_mb: int = 256,
        repo_root: Path | None = None,
    ) -> None:
        self.run_dir = run_dir.resolve()
        self.size = size
        self.heap_mb = heap_mb
        self.repo_root = repo_root.resolve() if repo_root is not None else _default_repo_root()
        ports = _free_ports(2 * size)
        self.nodes = {
            i: ClusterNode(i, self.run_dir / f"node-{i}", ports[2 * i - 2], ports[2 * i - 1])
            for i in range(1, size + 1)
        }

    @property
    def bootstrap(self) -> str:
        """Every node's address (a client needs only one of them alive)."""
        return ",".join(node.bootstrap for node in self.nodes.values())

    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes.values())

    def start(self, timeout: float = 90.0) -> KafkaCluster:
        """Format (first time) and launch every node, then wait until all serve clients;
        on failure every node is stopped."""
        lib = ensure_jars(self.repo_root)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = _cluster_id(self.run_dir)
        launched: list[tuple[KafkaNode, int]] = []
        try:
            for node in self.nodes.values():
                launched.append(self._launch(node, lib, cluster_id))
            deadline = time.monotonic() + timeout
            for ready, offset in launched:
                _wait_ready(ready, offset, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, node: ClusterNode, lib: Path, cluster_id: str) -> tuple[KafkaNode, int]:
        run_dir = node.run_dir
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (run_dir / "cluster.id").write_text(cluster_id + "\n")
        properties = _server_properties(
            run_dir,
            node.port,
            node.controller_port,
            node_id=node.node_id,
            voters=self._voters(),
            replication=min(self.size, 3),
        )
        (run_dir / "server.properties").write_text(properties)
        _format_storage(run_dir, lib, self.repo_root)
        log_file = _log_file(run_dir)
        offset = log_file.stat().st_size if log_file.is_file() else 0
        proc = _launch(run_dir, lib, self.repo_root, self.heap_mb)
        _CHILDREN[proc.pid] = proc
        _pid_file(run_dir).write_text(f"{proc.pid}\n")
        return KafkaNode(node.bootstrap, proc.pid, run_dir, log_file), offset

    def active_controller(self) -> int | None:
        """The leader of the metadata quorum as the nodes last recorded it (the KRaft
        ``quorum-state`` file of each node; the highest epoch wins), if any."""
        best: tuple[int, int] | None = None
        for node in self.nodes.values():
            path = node.run_dir / "data" / "__cluster_metadata-0" / "quorum-state"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            epoch, leader = int(state.get("leaderEpoch", -1)), int(state.get("leaderId", -1))
            if leader >= 0 and (best is None or epoch > best[0]):
                best = (epoch, leader)
        return best[1] if best is not None else None

    def pid(self, node_id: int) -> int | None:
        """The pid of the node if it runs."""
        running = is_running(self.nodes[node_id].run_dir)
        return running.pid if running is not None else None

    def kill(self, node_id: int) -> None:
        """SIGKILL the node (no clean shutdown, as a crashed machine) and reap it."""
        run_dir = self.nodes[node_id].run_dir
        pid = self.pid(node_id)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10.0):
                raise KafkaStartError(f"Kafka node {node_id} (pid {pid}) survived SIGKILL")
        _pid_file(run_dir).unlink(missing_ok=True)

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Stop the node cleanly (SIGTERM, then SIGKILL after `timeout`)."""
        stop_kafka(self.nodes[node_id].run_dir, timeout=timeout)

    def restart(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a stopped or killed node again on its data and ports; wait until it
        serves clients."""
        if self.pid(node_id) is not None:
            return
        lib = ensure_jars(self.repo_root)
        ready, offset = self._launch(self.nodes[node_id], lib, _cluster_id(self.run_dir))
        _wait_ready(ready, offset, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every node still running: SIGTERM to all at once, SIGKILL to those still
        there after `timeout` (the last nodes of a cluster may wait for a quorum that
        left)."""
        pids = [p for p in (self.pid(i) for i in self.nodes) if p is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in pids:
            if not _wait_gone(pid, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 10.0)
        for node in self.nodes.values():
            _pid_file(node.run_dir).unlink(missing_ok=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
