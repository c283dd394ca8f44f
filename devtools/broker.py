"""The local Apache Kafka broker of the tests and the demo: fetch its jars, start, stop, status.

One KRaft node (broker and controller in one JVM) on loopback, run from Apache's own jars, which
Maven resolves once from ``deploy/kafka/pom.xml`` into a cache folder. Everything it writes lives
under one home folder (``.cache/kafka`` at the repository root, or ``CENTINELA_KAFKA_HOME``):

- ``libs/`` the jars, with ``.stamp`` holding the hash of the pom they came from;
- ``data/`` the log directory; ``server.properties`` rendered from the template;
- ``broker.pid``, ``broker.json`` (port, version, start time) and ``broker.log`` (its output);
- ``tls/`` with ``--secure``: a throwaway CA, certificates and password files (``devtools.tls``).

``--secure`` adds a SASL_SSL listener (SCRAM-SHA-512 and PLAIN over TLS) and an SSL listener that
requires a client certificate, next to the loopback PLAINTEXT one (docs/security.md).

Several processes (a developer's shell, concurrent pytest sessions) share one home, so start, stop
and the test-session leases take a file lock, and a PID is trusted only when that process is really
this home's broker.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import psutil

from detector.errors import BrokerError, ConfigError
from devtools import tls as local_tls

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
HOME_ENV = "CENTINELA_KAFKA_HOME"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
PORT_ENV = "CENTINELA_KAFKA_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Heap as KAFKA_LOCAL.md suggests; small enough for a 2-core shared machine, resident 0.4-0.7 GB.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    # The broker stops its own logging; log4j's hook would only warn that it came too late.
    "-Dlog4j2.shutdownHookEnabled=false",
)
LOG_ROTATE_BYTES = 10 * 1024 * 1024
OWNER_CLI = "cli"
OWNER_SESSION = "session"


@dataclass(frozen=True)
class BrokerHome:
    """Where one local broker keeps its jars, data, config, PID and log."""

    root: Path
    deploy_dir: Path = DEPLOY_DIR
    # Another home's jars (a second broker on one machine needs no second copy); None: its own.
    shared_libs: Path | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BrokerHome:
        env = os.environ if environ is None else environ
        configured = env.get(HOME_ENV, "").strip()
        root = Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "kafka"
        return cls(root=root.resolve())

    @property
    def libs(self) -> Path:
        return self.shared_libs if self.shared_libs is not None else self.root / "libs"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def stamp(self) -> Path:
        return self.libs / ".stamp"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config_file(self) -> Path:
        return self.root / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.root / "broker.log"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def pom(self) -> Path:
        return self.deploy_dir / "pom.xml"

    @property
    def template(self) -> Path:
        return self.deploy_dir / "server.properties.template"

    @property
    def secure_template(self) -> Path:
        return self.deploy_dir / "secure.properties.template"

    @property
    def log4j_config(self) -> Path:
        return self.deploy_dir / "log4j2.properties"


@dataclass(frozen=True)
class BrokerConfig:
    """The options of one broker; the controller listens on ``port + 1`` unless told otherwise.

    ``secure`` adds SASL_SSL on ``port + 2`` and SSL with client certificates on ``port + 3``.
    """

    port: int = DEFAULT_PORT
    controller_port: int | None = None
    host: str = DEFAULT_HOST
    node_id: int = 1
    secure: bool = False
    sasl_port: int | None = None
    ssl_port: int | None = None

    def __post_init__(self) -> None:
        ports = {"port": self.port, "controller port": self.effective_controller_port}
        if self.secure:
            ports |= {"SASL_SSL port": self.effective_sasl_port, "SSL port": self.effective_ssl_port}
        for name, value in ports.items():
            if not 1 <= value <= 65535:
                raise ConfigError(f"broker {name} {value} is outside 1..65535")
        if len(set(ports.values())) < len(ports):
            if self.port == self.effective_controller_port:
                raise ConfigError(f"broker port and controller port are both {self.port}")
            raise ConfigError(f"broker ports must differ: {ports}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> BrokerConfig:
        """Port from ``CENTINELA_KAFKA_PORT`` (a second checkout on one machine needs its own)."""
        env = os.environ if environ is None else environ
        configured = env.get(PORT_ENV, "").strip()
        if not configured:
            return cls()
        if not configured.isdigit():
            raise ConfigError(f"{PORT_ENV}={configured!r} is not a port number")
        return cls(port=int(configured))

    @property
    def effective_controller_port(self) -> int:
        return self.controller_port if self.controller_port is not None else self.port + 1

    @property
    def effective_sasl_port(self) -> int:
        return self.sasl_port if self.sasl_port is not None else self.port + 2

    @property
    def effective_ssl_port(self) -> int:
        return self.ssl_port if self.ssl_port is not None else self.port + 3

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def ports(self) -> tuple[int, ...]:
        base = (self.port, self.effective_controller_port)
        return (*base, self.effective_sasl_port, self.effective_ssl_port) if self.secure else base


@dataclass(frozen=True)
class FetchResult:
    skipped: bool
    jar_count: int
    size_bytes: int
    seconds: float


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None = None
    port: int | None = None
    controller_port: int | None = None
    version: str | None = None
    started_at: str | None = None
    owner: str | None = None
    sasl_port: int | None = None
    ssl_port: int | None = None
    tls_dir: str | None = None

    @property
    def bootstrap(self) -> str | None:
        return f"{DEFAULT_HOST}:{self.port}" if self.port is not None else None

    @property
    def secure(self) -> bool:
        return self.sasl_port is not None and self.tls_dir is not None

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"{DEFAULT_HOST}:{self.sasl_port}" if self.sasl_port is not None else None

    @property
    def ssl_bootstrap(self) -> str | None:
        return f"{DEFAULT_HOST}:{self.ssl_port}" if self.ssl_port is not None else None


@dataclass(frozen=True)
class StartResult:
    status: BrokerStatus
    already_running: bool
    seconds: float


@dataclass(frozen=True)
class ClusterInfo:
    """What a metadata request told us about a cluster."""

    bootstrap: str
    broker_count: int
    cluster_id: str | None
    controller_id: int


# --- pure pieces -------------------------------------------------------------------------------


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters).

    Never one that starts with ``-`` (1 in 64 would): ``kafka-storage format -t -Abc…`` reads it as an
    option and fails with "expected one argument" (seen in CI). Kafka's own ``Uuid.randomUuid`` skips
    those for the same reason."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not candidate.startswith("-"):
            return candidate


def render_server_properties(
    template: str,
    config: BrokerConfig,
    log_dirs: Path,
    *,
    secure_template: str | None = None,
    tls: local_tls.TlsMaterial | None = None,
) -> str:
    """Fill the template's placeholders; a placeholder the template names but we lack is an error.

    With ``config.secure``, ``secure_template`` is appended, filled with the TLS paths and passwords
    of ``tls`` (the result then holds secrets: write it 0600).
    """
    values: dict[str, object] = {
        "node_id": config.node_id,
        "host": config.host,
        "port": config.port,
        "controller_port": config.effective_controller_port,
        "log_dirs": str(log_dirs),
    }
    text = template
    if config.secure:
        if secure_template is None or tls is None:
            raise ConfigError("a secure broker needs the secure template and its TLS material")
        values |= {
            "sasl_port": config.effective_sasl_port,
            "ssl_port": config.effective_ssl_port,
            "tls_dir": str(tls.folder),
            "user": tls.client_user,
            "password": tls.client_password(),
            "key_password": tls.key_password(),
        }
        text = template.rstrip("\n") + "\n" + secure_template
    try:
        return Template(text).substitute(values)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"server.properties template has an unknown placeholder: {error}") from error


def read_cluster_id(data_dir: Path) -> str | None:
    """The cluster id a formatted log directory was formatted with, or None if it is not formatted."""
    meta = data_dir / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id":
            return value.strip()
    return None


def pom_digest(pom: Path) -> str:
    # The plugin version is part of the digest: a different plugin may copy a different set.
    content = pom.read_bytes() + DEPENDENCY_PLUGIN.encode()
    return hashlib.sha256(content).hexdigest()


def kafka_version(libs: Path) -> str | None:
    """The broker version, read from the name of the ``kafka_2.13-X.jar`` Maven copied."""
    for jar in sorted(libs.glob("kafka_2.13-*.jar")):
        version = jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
        if version and not version.endswith(("-sources", "-test")):
            return version
    return None


START_MARKER = "--- centinela broker start"


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines the latest start wrote to the log."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log file)"
    latest = text[text.rfind(START_MARKER) :] if START_MARKER in text else text
    return "\n".join(latest.splitlines()[-lines:]) or "(log is empty)"


# --- fetch -------------------------------------------------------------------------------------


def jars_ready(home: BrokerHome) -> bool:
    return (
        home.stamp.is_file()
        and home.stamp.read_text().strip() == pom_digest(home.pom)
        and kafka_version(home.libs) is not None
    )


def fetch(home: BrokerHome) -> FetchResult:
    """Copy the broker's runtime jars into ``home.libs`` once; quick when the pom has not changed."""
    started = time.perf_counter()
    if not home.pom.is_file():
        raise ConfigError(f"no pom at {home.pom}; run centinela from a checkout of the repository")
    if jars_ready(home):
        return _fetch_result(home, skipped=True, started=started)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError("Maven (mvn) is not on PATH; run `make system-deps` or install maven")
    home.root.mkdir(parents=True, exist_ok=True)
    staging = home.root / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(home.pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    logger.info("resolving the Kafka jars with Maven into %s", home.libs)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as error:
        raise BrokerError("Maven did not finish resolving the Kafka jars within 15 minutes") from error
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise BrokerError(f"Maven could not resolve the Kafka jars (exit {done.returncode}):\n{output}")
    if kafka_version(staging) is None:
        raise BrokerError(f"Maven finished but {staging} holds no kafka_2.13 jar")
    # Swap in the complete folder only: an interrupted fetch never leaves half a classpath.
    shutil.rmtree(home.libs, ignore_errors=True)
    staging.rename(home.libs)
    home.stamp.write_text(pom_digest(home.pom) + "\n")
    return _fetch_result(home, skipped=False, started=started)


def _fetch_result(home: BrokerHome, *, skipped: bool, started: float) -> FetchResult:
    jars = list(home.libs.glob("*.jar"))
    return FetchResult(
        skipped=skipped,
        jar_count=len(jars),
        size_bytes=sum(jar.stat().st_size for jar in jars),
        seconds=time.perf_counter() - started,
    )


# --- process bookkeeping -------------------------------------------------------------------------


@contextlib.contextmanager
def home_lock(home: BrokerHome, timeout_s: float = 180.0) -> Iterator[None]:
    """Exclusive lock on the home folder, across processes; released when the holder dies."""
    home.root.mkdir(parents=True, exist_ok=True)
    with home.lock_file.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"another process holds {home.lock_file} for {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _broker_process(home: BrokerHome) -> psutil.Process | None:
    """The live broker process of this home, or None; a recycled PID is not mistaken for it."""
    try:
        pid = int(home.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "kafka.Kafka" in cmdline and str(home.config_file) in cmdline:
        return process
    return None


def _read_state(home: BrokerHome) -> dict[str, object]:
    try:
        state = json.loads(home.state_file.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(home: BrokerHome, state: dict[str, object]) -> None:
    home.state_file.write_text(json.dumps(state) + "\n")


def status(home: BrokerHome) -> BrokerStatus:
    process = _broker_process(home)
    if process is None:
        return BrokerStatus(running=False)
    state = _read_state(home)

    def as_int(key: str) -> int | None:
        value = state.get(key)
        return value if isinstance(value, int) else None

    def as_str(key: str) -> str | None:
        value = state.get(key)
        return value if isinstance(value, str) else None

    return BrokerStatus(
        running=True,
        pid=process.pid,
        port=as_int("port"),
        controller_port=as_int("controller_port"),
        version=as_str("version"),
        started_at=as_str("started_at"),
        owner=as_str("owner"),
        sasl_port=as_int("sasl_port"),
        ssl_port=as_int("ssl_port"),
        tls_dir=as_str("tls_dir"),
    )


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.is_file():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ConfigError("Java 17 or newer is needed for the local broker: no `java` on PATH or JAVA_HOME")
    return found


def _class_archive_options(home: BrokerHome) -> list[str]:
    """AppCDS: the first run writes an archive of the loaded classes at exit, later runs map it.

    On two busy cores this takes seconds off every start. The archive's name carries the pom's
    digest, so new jars get a new archive; a stale or damaged one is ignored silently by the JVM.
    """
    archive = home.root / f"classes-{pom_digest(home.pom)[:12]}.jsa"
    quiet = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", *quiet]
    for old in home.root.glob("classes-*.jsa"):
        old.unlink(missing_ok=True)
    return [f"-XX:ArchiveClassesAtExit={archive}", *quiet]


def _java_command(home: BrokerHome, main_class: str, *args: str, class_archive: bool = False) -> list[str]:
    return [
        _java(),
        *JVM_OPTIONS,
        *(_class_archive_options(home) if class_archive else []),
        f"-Dlog4j2.configurationFile={home.log4j_config}",
        f"-Dkafka.logs.dir={home.root}",
        "-cp",
        f"{home.libs}/*",
        main_class,
        *args,
    ]


def _format_storage(home: BrokerHome, tls: local_tls.TlsMaterial | None) -> None:
    if read_cluster_id(home.data) is not None:
        return
    home.data.mkdir(parents=True, exist_ok=True)
    command = _java_command(
        home, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(home.config_file)
    )
    command.append("--ignore-formatted")
    if tls is not None:
        # The SCRAM user goes into the first metadata records, so it works from the broker's first
        # second. StorageTool takes the password only on its command line (visible in the process
        # list while it formats, about two seconds, on this machine only); _ensure_scram_user
        # re-asserts it at every secure start from the password file.
        user = f"name={tls.client_user},password={tls.client_password()}"
        command += ["--add-scram", f"SCRAM-SHA-512=[{user}]"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise BrokerError(f"formatting {home.data} failed (exit {done.returncode}):\n{output}")


def _spawn_detached(command: list[str], home: BrokerHome) -> psutil.Process:
    """Run ``command`` as a daemon: a grandchild in its own session, output appended to the log.

    A direct child would die with Ctrl-C in the shell that started it, and would leave a zombie
    (and a ResourceWarning) in a pytest session that starts it but lets another session stop it.
    """
    launcher = 'log="$1"; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    done = subprocess.run(
        ["/bin/sh", "-c", launcher, "sh", str(home.log_file), *command],
        capture_output=True,
        text=True,
        cwd=home.root,
        start_new_session=True,
        timeout=30,
        check=False,
    )
    try:
        return psutil.Process(int(done.stdout.strip()))
    except (ValueError, psutil.NoSuchProcess) as error:
        raise BrokerError(f"could not launch the broker: {done.stderr.strip() or error}") from error


def _rotate_log(home: BrokerHome) -> None:
    with contextlib.suppress(OSError):
        if home.log_file.stat().st_size > LOG_ROTATE_BYTES:
            home.log_file.replace(home.log_file.with_suffix(".log.1"))


# --- readiness -----------------------------------------------------------------------------------


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap string (``[v6]:port`` too); unparsable entries are left out."""
    addresses = []
    for entry in bootstrap.split(","):
        address = entry.strip().rpartition("://")[2]
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            continue
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _refusals(bootstrap: str, timeout_s: float) -> list[str] | None:
    """Why no bootstrap address takes a TCP connection, or None if one does (or we cannot tell)."""
    addresses = bootstrap_addresses(bootstrap)
    if not addresses:
        return None
    reasons = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as error:
            reasons.append(f"{host}:{port}: {error.strerror or error}")
    return reasons


def probe_cluster(bootstrap: str, timeout_s: float = 10.0) -> ClusterInfo:
    """One metadata request to ``bootstrap``; raises BrokerError naming the address if none answers.

    A refused TCP connection fails at once rather than after librdkafka's full timeout.
    """
    refused = _refusals(bootstrap, timeout_s=min(timeout_s, 3.0))
    if refused is not None:
        raise BrokerError(f"Kafka at {bootstrap} cannot be reached: {'; '.join(refused)}")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
            "reconnect.backoff.max.ms": 500,
            # librdkafka would print every refused connection to stderr; the error below says it once.
            "log_level": 0,
        }
    )
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise BrokerError(
            f"Kafka at {bootstrap} did not answer a metadata request within {timeout_s:g} s ({error})"
        ) from error
    return ClusterInfo(
        bootstrap=bootstrap,
        broker_count=len(metadata.brokers),
        cluster_id=metadata.cluster_id,
        controller_id=metadata.controller_id,
    )


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until_ready(process: psutil.Process, config: BrokerConfig, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    # Waiting for the port first keeps librdkafka's reconnect backoff out of the start time.
    while not _port_in_use(config.host, config.port):
        if not _alive(process):
            raise BrokerError("the broker exited while starting")
        if time.monotonic() > deadline:
            raise BrokerError(f"the broker did not open {config.bootstrap} within {timeout_s:g} s")
        time.sleep(0.1)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerError(f"the broker at {config.bootstrap} did not answer within {timeout_s:g} s")
        try:
            info = probe_cluster(config.bootstrap, timeout_s=min(5.0, max(remaining, 1.0)))
        except BrokerError:
            if not _alive(process):
                raise BrokerError("the broker exited while starting") from None
            continue
        if info.broker_count >= 1:
            return
        time.sleep(0.1)


# --- start / stop ------------------------------------------------------------------------------


def start(
    home: BrokerHome,
    config: BrokerConfig,
    *,
    fresh: bool = False,
    timeout_s: float = 90.0,
    owner: str = OWNER_CLI,
) -> StartResult:
    """Start the broker in the background and return once it answers a metadata request.

    Already running: returns its status with ``already_running`` (``fresh`` is then refused, since
    wiping a live broker's data would break whoever uses it).
    """
    began = time.perf_counter()
    with home_lock(home):
        return _start_locked(home, config, fresh=fresh, timeout_s=timeout_s, owner=owner, began=began)


def _start_locked(
    home: BrokerHome, config: BrokerConfig, *, fresh: bool, timeout_s: float, owner: str, began: float
) -> StartResult:
    current = status(home)
    if current.running:
        if fresh:
            raise BrokerError(f"a broker is running (pid {current.pid}); stop it before --fresh")
        if config.secure and not current.secure:
            raise BrokerError(
                f"a broker without secured listeners is running (pid {current.pid}); "
                "stop it before starting one with --secure"
            )
        return StartResult(current, already_running=True, seconds=time.perf_counter() - began)
    fetch(home)
    if fresh:
        shutil.rmtree(home.data, ignore_errors=True)
        for archive in home.root.glob("classes-*.jsa"):
            archive.unlink(missing_ok=True)
    for port in config.ports():
        if _port_in_use(config.host, port):
            raise BrokerError(
                f"{config.host}:{port} is already in use by another process (not the broker of "
                f"{home.root}); choose other ports with --port/--controller-port"
            )
    tls = local_tls.issue(home.tls) if config.secure else None
    rendered = render_server_properties(
        home.template.read_text(encoding="utf-8"),
        config,
        home.data,
        secure_template=home.secure_template.read_text(encoding="utf-8") if config.secure else None,
        tls=tls,
    )
    # Created 0600 from the start: with --secure it holds the PLAIN password and the key password.
    local_tls.write_secret(home.config_file, rendered.rstrip("\n"))
    _format_storage(home, tls)
    version = kafka_version(home.libs)
    _rotate_log(home)
    with home.log_file.open("ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"{START_MARKER} {stamp} port {config.port}\n".encode())
    command = _java_command(home, "kafka.Kafka", str(home.config_file), class_archive=True)
    process = _spawn_detached(command, home)
    home.pid_file.write_text(f"{process.pid}\n")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    _write_state(
        home,
        {
            "pid": process.pid,
            "port": config.port,
            "controller_port": config.effective_controller_port,
            "version": version,
            "started_at": started_at,
            "owner": owner,
            **(
                {
                    "sasl_port": config.effective_sasl_port,
                    "ssl_port": config.effective_ssl_port,
                    "tls_dir": str(home.tls),
                }
                if tls is not None
                else {}
            ),
        },
    )
    try:
        _wait_until_ready(process, config, timeout_s)
        if tls is not None:
            _ensure_scram_user(config.bootstrap, tls, timeout_s=30.0)
    except BrokerError as error:
        _terminate(process, timeout_s=10.0)
        _forget(home)
        raise BrokerError(f"{error}; last lines of {home.log_file}:\n{tail(home.log_file)}") from None
    seconds = time.perf_counter() - began
    logger.info("Kafka %s started at %s in %.1f s (pid %d)", version, config.bootstrap, seconds, process.pid)
    return StartResult(status(home), already_running=False, seconds=seconds)


def _ensure_scram_user(bootstrap: str, tls: local_tls.TlsMaterial, timeout_s: float) -> None:
    """Create or update the SCRAM-SHA-512 user from its password file, over the loopback listener.

    Needed when the data folder was formatted before ``--secure`` or the password file was
    regenerated; otherwise it rewrites the same password (idempotent).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    upsert = UserScramCredentialUpsertion(
        tls.client_user,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
        tls.client_password().encode(),
    )
    try:
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=timeout_s)
    except KafkaException as error:
        raise BrokerError(f"cannot create the SCRAM user {tls.client_user}: {error}") from error


def secure_client_config(
    status: BrokerStatus, *, mechanism: str = "SCRAM-SHA-512", mutual_tls: bool = False
) -> dict[str, str]:
    """librdkafka settings for a secured listener of a running ``--secure`` broker.

    SASL_SSL with ``mechanism`` (``SCRAM-SHA-512`` or ``PLAIN``), or with ``mutual_tls`` the SSL
    listener with the client certificate. Holds the password: pass it to a client, never print it.
    """
    if not status.secure or status.tls_dir is None:
        raise BrokerError("the local broker runs without secured listeners; start it with --secure")
    tls = local_tls.TlsMaterial(Path(status.tls_dir))
    if mutual_tls:
        return {
            "bootstrap.servers": str(status.ssl_bootstrap),
            "security.protocol": "SSL",
            "ssl.ca.location": str(tls.ca_cert),
            "ssl.certificate.location": str(tls.client_cert),
            "ssl.key.location": str(tls.client_key),
        }
    return {
        "bootstrap.servers": str(status.sasl_bootstrap),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": tls.client_user,
        "sasl.password": tls.client_password(),
        "ssl.ca.location": str(tls.ca_cert),
    }


def _terminate(process: psutil.Process, timeout_s: float) -> bool:
    """SIGTERM (a controlled shutdown), then SIGKILL after ``timeout_s``; True if it had to kill."""
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=timeout_s)
        return False
    except psutil.NoSuchProcess:
        return False
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
            process.wait(timeout=10)
        return True


def _forget(home: BrokerHome) -> None:
    for path in (home.pid_file, home.state_file):
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class StopResult:
    was_running: bool
    pid: int | None
    killed: bool
    seconds: float


def stop(home: BrokerHome, *, timeout_s: float = 30.0) -> StopResult:
    """Stop the broker of this home; nothing running is not an error."""
    began = time.perf_counter()
    with home_lock(home):
        return _stop_locked(home, timeout_s, began)


def _stop_locked(home: BrokerHome, timeout_s: float, began: float) -> StopResult:
    process = _broker_process(home)
    if process is None:
        _forget(home)
        return StopResult(was_running=False, pid=None, killed=False, seconds=time.perf_counter() - began)
    killed = _terminate(process, timeout_s)
    _forget(home)
    if killed:
        logger.warning(
            "the broker (pid %d) ignored SIGTERM for %.0f s and was killed", process.pid, timeout_s
        )
    return StopResult(was_running=True, pid=process.pid, killed=killed, seconds=time.perf_counter() - began)


# --- shared use by test sessions -------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """One process's claim on the local broker; the last lease of a session-started broker stops it."""

    home: BrokerHome
    start: StartResult
    token: Path

    @property
    def bootstrap(self) -> str:
        bootstrap = self.start.status.bootstrap
        if bootstrap is None:
            raise BrokerError(f"the broker state file {self.home.state_file} names no port")
        return bootstrap


def acquire(home: BrokerHome, config: BrokerConfig, *, timeout_s: float = 90.0) -> Lease:
    """Reuse the running broker, or start one owned by the test sessions, and register this process.

    Several pytest sessions share one checkout here; without leases the first to finish would stop
    the broker under the others.
    """
    # One lock for both steps: a session finishing in between would otherwise see no lease and
    # stop the broker this one has just decided to reuse.
    with home_lock(home):
        result = _start_locked(
            home, config, fresh=False, timeout_s=timeout_s, owner=OWNER_SESSION, began=time.perf_counter()
        )
        home.leases.mkdir(parents=True, exist_ok=True)
        token = home.leases / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        token.write_text(f"{os.getpid()}\n")
    return Lease(home=home, start=result, token=token)


def release(lease: Lease, *, timeout_s: float = 30.0) -> StopResult | None:
    """Drop this lease; stop the broker if a test session started it and no live lease is left."""
    home = lease.home
    began = time.perf_counter()
    with home_lock(home):
        lease.token.unlink(missing_ok=True)
        if _live_leases(home) > 0:
            return None
        current = status(home)
        if not current.running or current.owner != OWNER_SESSION:
            return None
        return _stop_locked(home, timeout_s, began)


def _live_leases(home: BrokerHome) -> int:
    live = 0
    for token in home.leases.glob("*"):
        try:
            pid = int(token.read_text().strip())
        except (OSError, ValueError):
            pid = -1
        if pid > 0 and psutil.pid_exists(pid):
            live += 1
        else:
            # A session that died without cleaning up must not keep the broker alive for ever.
            token.unlink(missing_ok=True)
    return live


# --- a broker for a test session, benchmark or demo -----------------------------------------------


@dataclass(frozen=True)
class ProvidedBroker:
    """A broker to use, and how it was obtained (for a log or summary line)."""

    bootstrap: str
    source: str  # "environment", "local" or "testcontainers"
    version: str
    started_here: bool
    start_seconds: float | None = None

    def describe(self) -> str:
        if self.source == "environment":
            how = f"from {BOOTSTRAP_ENV}"
        elif self.started_here and self.start_seconds is not None:
            how = f"started in {self.start_seconds:.1f} s"
        else:
            how = "already running"
        return f"Kafka broker {self.version} at {self.bootstrap} ({self.source}, {how})"


# Where the local broker moves when the default ports are taken by something else: a step of 10
# leaves room for the controller and the secured listeners (port + 1 .. + 3).
FALLBACK_PORTS = range(19092, 20092, 10)


def free_ports(config: BrokerConfig, in_use: Callable[[int], bool]) -> BrokerConfig:
    """``config``, or the first ``FALLBACK_PORTS`` choice whose ports are all free when one of its
    ports is in use by another process (another checkout's broker, someone else's Kafka).

    Only for a port nobody chose: a fresh clone on a machine that already runs a Kafka on 9092 must
    run the demo and the tests on a broker of its own, never on that one. The choice is logged.
    """
    busy = [port for port in config.ports() if in_use(port)]
    if not busy:
        return config
    for port in FALLBACK_PORTS:
        candidate = dataclasses.replace(config, port=port, controller_port=None)
        if not any(in_use(p) for p in candidate.ports()):
            logger.warning(
                "port %s is in use by another process (not this checkout's broker): the local broker "
                "listens on %s instead (set %s to choose)",
                busy[0],
                port,
                PORT_ENV,
            )
            return candidate
    raise BrokerError(
        f"ports {config.ports()} and every fallback in {FALLBACK_PORTS.start}..{FALLBACK_PORTS.stop} "
        f"are in use; set {PORT_ENV} to a free port"
    )


@contextlib.contextmanager
def provide(
    environ: Mapping[str, str] | None = None,
    *,
    config: BrokerConfig | None = None,
    probe_timeout_s: float = 10.0,
) -> Iterator[ProvidedBroker]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set (checked, never started), else the local broker.

    The local broker is reused when it runs; otherwise it is started and, when the block ends and
    no other user holds a lease, stopped again. Started on the default port while another process
    holds it (and ``CENTINELA_KAFKA_PORT`` is unset), it moves to a free port (``free_ports``).
    """
    env = os.environ if environ is None else environ
    configured = env.get(BOOTSTRAP_ENV, "").strip()
    if configured:
        info = probe_cluster(configured, timeout_s=probe_timeout_s)
        yield ProvidedBroker(
            bootstrap=configured,
            source="environment",
            version=f"(external: {info.broker_count} broker(s), cluster {info.cluster_id})",
            started_here=False,
        )
        return
    home = BrokerHome.from_environment(env)
    chosen = config or BrokerConfig.from_environment(env)
    if config is None and not env.get(PORT_ENV, "").strip() and not status(home).running:
        chosen = free_ports(chosen, lambda port: _port_in_use(chosen.host, port))
    lease = acquire(home, chosen)
    try:
        yield ProvidedBroker(
            bootstrap=lease.bootstrap,
            source="local",
            version=lease.start.status.version or "?",
            started_here=not lease.start.already_running,
            start_seconds=lease.start.seconds,
        )
    finally:
        release(lease)
