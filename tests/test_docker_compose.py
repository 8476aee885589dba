"""Static checks of docker-compose.yml and Dockerfile (no Docker engine needed: nothing starts).

Each check is a function that takes the parsed file(s) and returns a list of problems, so the
tests below run it on the real files (expecting no problems) and on deliberately broken copies
(expecting the breakage to be reported).
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
LOCK_FILE = REPO_ROOT / "requirements.lock"

REQUIRED_SERVICES = (
    "postgres",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
# The data root: created at run time, so it need not exist in the repo.
DATA_ROOT_DEFAULT = "./var"
DB_CONN_KEY = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
DAGS_FOLDER_KEY = "AIRFLOW__CORE__DAGS_FOLDER"
BORDIN_ENV_KEYS = ("BORDIN_HOME", "BORDIN_PSEUDONYM_KEY_FILE")

# Compose interpolation: `$$` is a literal dollar; `${NAME}`, `${NAME:-default}`,
# `${NAME-default}`, `${NAME:?err}`, `${NAME?err}`, `${NAME:+alt}`, `${NAME+alt}` and `$NAME`.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


# --------------------------------------------------------------------------- helpers


def load_compose(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict, whether written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def runs_airflow(name: str, service: dict[str, Any]) -> bool:
    env = environment(service)
    return name.startswith("airflow") or any(key.startswith("AIRFLOW__") for key in env)


def airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services(compose).items() if runs_airflow(name, svc)}


def resolve_defaults(value: str) -> str | None:
    """Substitute `${VAR:-default}` by its default; None if a variable has no default."""
    unresolved = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unresolved
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        unresolved = True
        return ""

    resolved = _INTERPOLATION.sub(substitute, value)
    return None if unresolved else resolved


def variable_refs(value: str) -> Iterator[tuple[str, bool]]:
    """(name, has_default) for every variable interpolated in a string."""
    for match in _INTERPOLATION.finditer(value):
        if match.group(0) == "$$":
            continue
        name = match.group("braced") or match.group("bare")
        yield name, match.group("op") in (":-", "-")


def walk_strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML tree (compose interpolates values, not keys)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def parse_volume(volume: str | dict[str, Any]) -> tuple[str | None, str | None, str]:
    """(source, target, type) of a short- or long-syntax service volume."""
    if isinstance(volume, dict):
        return volume.get("source"), volume.get("target"), volume.get("type", "volume")
    parts = volume.split(":")
    # A `${VAR:-default}` source contains a colon of its own: re-join it.
    if parts[0].startswith("${") and "}" not in parts[0]:
        for index in range(1, len(parts)):
            if "}" in parts[index]:
                parts = [":".join(parts[: index + 1]), *parts[index + 1 :]]
                break
    if len(parts) == 1:
        return None, parts[0], "volume"
    source = parts[0]
    resolved = resolve_defaults(source) or source
    is_bind = resolved.startswith((".", "/", "~")) or source.startswith("$")
    return source, parts[1], "bind" if is_bind else "volume"


def is_data_root(relative: str) -> bool:
    normalised = relative.rstrip("/")
    root = DATA_ROOT_DEFAULT.rstrip("/")
    return normalised == root or normalised.startswith(root + "/")


def dockerfile_instructions(text: str) -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        joined.append(buffer + line)
        buffer = ""
    if buffer:
        joined.append(buffer)
    instructions = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        args = yaml.safe_load(rest) if rest.startswith("[") else shlex.split(rest)
        instructions.append((keyword.upper(), args))
    return instructions


def image_tag(image: str) -> str | None:
    """The tag of `repo[:tag][@digest]`, '@digest' for digest-only references, else None."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


# --------------------------------------------------------------------------- checks


def check_required_services(compose: dict[str, Any]) -> list[str]:
    present = services(compose)
    return [f"service {name!r} is missing" for name in REQUIRED_SERVICES if name not in present]


def check_images_pinned(compose: dict[str, Any], dockerfile: str = "") -> list[str]:
    problems = []
    images = [(f"service {name!r}", svc.get("image")) for name, svc in services(compose).items()]
    stages = set()
    for keyword, args in dockerfile_instructions(dockerfile):
        if keyword == "FROM":
            images.append(("Dockerfile FROM", args[0]))
            if len(args) >= 3 and args[1].upper() == "AS":
                stages.add(args[2])
    for where, image in images:
        if image is None:
            if where.startswith("service"):
                name = where.split("'")[1]
                if "build" not in services(compose)[name]:
                    problems.append(f"{where} has neither an image nor a build")
            continue
        if image in stages:
            continue
        tag = image_tag(image)
        if not tag:
            problems.append(f"{where}: image {image!r} has no explicit tag")
        elif tag == "latest":
            problems.append(f"{where}: image {image!r} uses the floating 'latest' tag")
        elif "$" in tag:
            problems.append(f"{where}: image {image!r} takes its tag from a variable")
    return problems


def host_paths(compose: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, raw host path) for bind mounts, build contexts/dockerfiles and secret files."""
    for name, svc in services(compose).items():
        for volume in svc.get("volumes") or []:
            source, _, kind = parse_volume(volume)
            if kind == "bind" and source:
                yield f"service {name!r} volume", source
        build = svc.get("build")
        if isinstance(build, str):
            yield f"service {name!r} build context", build
        elif isinstance(build, dict):
            context = build.get("context", ".")
            yield f"service {name!r} build context", context
            if "dockerfile" in build:
                yield f"service {name!r} dockerfile", f"{context.rstrip('/')}/{build['dockerfile']}"
    for section in ("secrets", "configs"):
        for name, spec in (compose.get(section) or {}).items():
            if isinstance(spec, dict) and "file" in spec:
                yield f"{section[:-1]} {name!r} file", spec["file"]


def check_host_paths_exist(compose: dict[str, Any], root: Path) -> list[str]:
    problems = []
    for where, raw in host_paths(compose):
        path = resolve_defaults(raw)
        if path is None:
            problems.append(f"{where}: {raw!r} has no default, so it cannot be checked")
        elif path.startswith(("/", "~")):
            problems.append(f"{where}: {raw!r} is not relative to the repository")
        elif is_data_root(path):
            continue
        elif not (root / path).exists():
            problems.append(f"{where}: {raw!r} does not exist in the repository")
    declared = set(compose.get("volumes") or {})
    for name, svc in services(compose).items():
        for volume in svc.get("volumes") or []:
            source, _, kind = parse_volume(volume)
            if kind == "volume" and source and source not in declared:
                problems.append(f"service {name!r}: named volume {source!r} is not declared")
    return problems


def check_data_root(compose: dict[str, Any]) -> list[str]:
    """Every Airflow service mounts the BORDIN_HOME default ./var at BORDIN_HOME."""
    problems = []
    for name, svc in airflow_services(compose).items():
        home = environment(svc).get("BORDIN_HOME")
        if not home:
            problems.append(f"service {name!r} does not set BORDIN_HOME")
            continue
        mounts = {
            target: source for source, target, _ in map(parse_volume, svc.get("volumes") or [])
        }
        source = mounts.get(home)
        if source is None:
            problems.append(f"service {name!r}: nothing is mounted at BORDIN_HOME={home}")
        elif resolve_defaults(source) != DATA_ROOT_DEFAULT:
            problems.append(
                f"service {name!r}: BORDIN_HOME is mounted from {source!r}, "
                f"whose default is not {DATA_ROOT_DEFAULT}"
            )
    return problems


def check_required_vars_documented(text: str) -> list[str]:
    header = header_comment(text)
    required = {
        name
        for value in walk_strings(load_compose(text))
        for name, has_default in variable_refs(value)
        if not has_default
    }
    return [
        f"${{{name}}} has no default and is not documented in the header comment"
        for name in sorted(required)
        if not re.search(rf"\b{re.escape(name)}\b", header)
    ]


def locked_airflow_version(lock: str) -> str | None:
    match = re.search(r"^apache-airflow==([^\s;#]+)", lock, re.MULTILINE)
    return match.group(1) if match else None


def check_base_image_matches_lock(dockerfile: str, lock: str) -> list[str]:
    version = locked_airflow_version(lock)
    if version is None:
        return ["requirements.lock does not pin apache-airflow==X"]
    bases = [args[0] for keyword, args in dockerfile_instructions(dockerfile) if keyword == "FROM"]
    airflow_bases = [base for base in bases if base.split(":")[0] == "apache/airflow"]
    if not airflow_bases:
        return ["the Dockerfile does not start FROM apache/airflow"]
    problems = []
    for base in airflow_bases:
        tag = image_tag(base) or ""
        if tag.split("-")[0] != version:
            problems.append(f"FROM {base} does not match apache-airflow=={version} in the lock")
    return problems


def check_copy_sources_exist(dockerfile: str, root: Path) -> list[str]:
    problems = []
    for keyword, args in dockerfile_instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        if any(arg.startswith("--from=") for arg in args):
            continue  # from another build stage, not from the context
        operands = [arg for arg in args if not arg.startswith("--")]
        if len(operands) < 2:
            problems.append(f"{keyword} {' '.join(args)} has no source")
            continue
        for source in operands[:-1]:
            if re.match(r"^[a-z]+://", source):
                problems.append(f"{keyword} {source}: fetches from outside the repository")
            elif not list(root.glob(source.rstrip("/"))):
                problems.append(f"{keyword} {source}: no such file in the repository")
    return problems


def check_dockerfile_installs(dockerfile: str) -> list[str]:
    runs = " ".join(
        " ".join(args) for keyword, args in dockerfile_instructions(dockerfile) if keyword == "RUN"
    )
    problems = []
    if not re.search(r"pip install --no-deps -r requirements\.lock", runs):
        problems.append("the Dockerfile does not install requirements.lock with --no-deps")
    if not re.search(r"pip install --no-deps(?: [-\w]+)* (?:-e )?\.(?:\s|$)", runs):
        problems.append("the Dockerfile does not install the project itself with --no-deps")
    return problems


# Airflow on Postgres opens a sync engine (psycopg2) and an async one (asyncpg): without either
# driver every Airflow process stops at start-up with ModuleNotFoundError.
POSTGRES_DRIVERS = (("psycopg2-binary", "psycopg2"), ("asyncpg",))


def check_lock_has_postgres_drivers(lock: str) -> list[str]:
    """The lock (which the Dockerfile and `make venv` install) pins both drivers exactly."""
    pinned = set(re.findall(r"^([A-Za-z0-9_.-]+)==\S+", lock, re.MULTILINE))
    return [
        f"requirements.lock does not pin {' or '.join(names)} (name==version)"
        for names in POSTGRES_DRIVERS
        if not pinned.intersection(names)
    ]


def check_dags_folder(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in airflow_services(compose).items():
        folder = environment(svc).get(DAGS_FOLDER_KEY)
        targets = [
            target
            for source, target, _ in map(parse_volume, svc.get("volumes") or [])
            if source and (resolve_defaults(source) or "").rstrip("/") in ("./dags", "dags")
        ]
        if not targets:
            problems.append(f"service {name!r} does not mount ./dags")
        elif folder is None:
            problems.append(f"service {name!r} does not set {DAGS_FOLDER_KEY}")
        elif folder.rstrip("/") not in [target.rstrip("/") for target in targets]:
            problems.append(
                f"service {name!r}: {DAGS_FOLDER_KEY}={folder} but ./dags is at {targets}"
            )
    return problems


def check_same_db_conn(compose: dict[str, Any]) -> list[str]:
    conns = {
        name: environment(svc).get(DB_CONN_KEY) for name, svc in airflow_services(compose).items()
    }
    if not conns:
        return ["no service runs Airflow"]
    problems = [
        f"service {name!r} does not set {DB_CONN_KEY}" for name, c in conns.items() if not c
    ]
    distinct = {c for c in conns.values() if c}
    if len(distinct) > 1:
        problems.append(f"the Airflow services disagree on {DB_CONN_KEY}: {sorted(distinct)}")
    for conn in distinct:
        match = re.match(r"^postgresql\+psycopg2://[^@]+@(?P<host>[^:/]+)", conn)
        if not match:
            problems.append(f"{DB_CONN_KEY}={conn} is not a postgresql+psycopg2 URL")
        elif match.group("host") not in services(compose):
            problems.append(f"{DB_CONN_KEY} points at {match.group('host')!r}, not a service")
    return problems


def check_bordin_env(compose: dict[str, Any]) -> list[str]:
    problems = []
    declared = set(compose.get("secrets") or {})
    for name, svc in airflow_services(compose).items():
        env = environment(svc)
        problems += [
            f"service {name!r} does not set {key}" for key in BORDIN_ENV_KEYS if not env.get(key)
        ]
        key_file = env.get("BORDIN_PSEUDONYM_KEY_FILE", "")
        if key_file.startswith("/run/secrets/"):
            secret = key_file.removeprefix("/run/secrets/")
            granted = {
                s if isinstance(s, str) else s.get("source") for s in svc.get("secrets") or []
            }
            if secret not in granted or secret not in declared:
                problems.append(f"service {name!r}: secret {secret!r} is not declared and granted")
    return problems


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return load_compose(compose_text)


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def lock() -> str:
    return LOCK_FILE.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the real files


def test_required_services(compose: dict[str, Any]) -> None:
    assert check_required_services(compose) == []


def test_images_pinned(compose: dict[str, Any], dockerfile: str) -> None:
    assert check_images_pinned(compose, dockerfile) == []


def test_host_paths_exist(compose: dict[str, Any]) -> None:
    assert check_host_paths_exist(compose, REPO_ROOT) == []


def test_data_root_is_bordin_home_default(compose: dict[str, Any]) -> None:
    assert check_data_root(compose) == []


def test_required_vars_documented(compose_text: str) -> None:
    assert check_required_vars_documented(compose_text) == []


def test_base_image_matches_lock(dockerfile: str, lock: str) -> None:
    assert check_base_image_matches_lock(dockerfile, lock) == []


def test_copy_sources_exist(dockerfile: str) -> None:
    assert check_copy_sources_exist(dockerfile, REPO_ROOT) == []


def test_dockerfile_installs(dockerfile: str) -> None:
    assert check_dockerfile_installs(dockerfile) == []


def test_lock_has_postgres_drivers(lock: str) -> None:
    assert check_lock_has_postgres_drivers(lock) == []


def test_dags_folder_is_dags_mount(compose: dict[str, Any]) -> None:
    assert check_dags_folder(compose) == []


def test_same_db_conn(compose: dict[str, Any]) -> None:
    assert check_same_db_conn(compose) == []


def test_bordin_env(compose: dict[str, Any]) -> None:
    assert check_bordin_env(compose) == []


def test_header_mentions_embedded_sqlite_default(compose_text: str) -> None:
    header = header_comment(compose_text)
    assert "make demo" in header and "SQLite" in header


def test_every_airflow_service_is_covered(compose: dict[str, Any]) -> None:
    """The per-service checks above are vacuous unless they see the Airflow services."""
    assert set(REQUIRED_SERVICES) - {"postgres"} <= set(airflow_services(compose))


# --------------------------------------------------------------------------- the checks can fail


def test_resolve_defaults() -> None:
    assert resolve_defaults("${A:-./var}:/x") == "./var:/x"
    assert resolve_defaults("${A-b}") == "b"
    assert resolve_defaults("$${HOSTNAME}") == "${HOSTNAME}"
    assert resolve_defaults("${A:?set A}") is None
    assert resolve_defaults("$A") is None


def test_parse_volume() -> None:
    assert parse_volume("${H:-./var}:/opt/bordin/var") == ("${H:-./var}", "/opt/bordin/var", "bind")
    assert parse_volume("./dags:/opt/bordin/dags:ro") == ("./dags", "/opt/bordin/dags", "bind")
    assert parse_volume("pgdata:/var/lib/postgresql/data")[2] == "volume"
    assert parse_volume({"type": "bind", "source": "./x", "target": "/x"}) == ("./x", "/x", "bind")


def _break(compose: dict[str, Any], mutate) -> dict[str, Any]:
    broken = copy.deepcopy(compose)
    # YAML merge keys leave services sharing the anchored mappings (e.g. one environment
    # dict): copy each service on its own so breaking one service leaves the others intact.
    broken["services"] = {name: copy.deepcopy(svc) for name, svc in compose["services"].items()}
    mutate(broken)
    return broken


def _svc(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]


def _env(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return compose["services"][name]["environment"]


BREAKAGES = {
    "missing service": (
        check_required_services,
        lambda c: c["services"].pop("airflow-triggerer"),
        "airflow-triggerer",
    ),
    "latest tag": (
        check_images_pinned,
        lambda c: _svc(c, "postgres").update(image="postgres:latest"),
        "latest",
    ),
    "no tag": (
        check_images_pinned,
        lambda c: _svc(c, "postgres").update(image="postgres"),
        "no explicit tag",
    ),
    "missing bind source": (
        lambda c: check_host_paths_exist(c, REPO_ROOT),
        lambda c: _svc(c, "airflow-scheduler")["volumes"].append("./no-such-dir:/x"),
        "no-such-dir",
    ),
    "missing secret file": (
        lambda c: check_host_paths_exist(c, REPO_ROOT),
        lambda c: c["secrets"]["bordin_pseudonym_key"].update(file="${K:-./nope/key}"),
        "nope/key",
    ),
    "missing build context": (
        lambda c: check_host_paths_exist(c, REPO_ROOT),
        lambda c: _svc(c, "airflow-init").update(build={"context": "./nowhere"}),
        "nowhere",
    ),
    "undeclared named volume": (
        lambda c: check_host_paths_exist(c, REPO_ROOT),
        lambda c: c.pop("volumes"),
        "not declared",
    ),
    "data root moved": (
        check_data_root,
        lambda c: _svc(c, "airflow-apiserver").update(
            volumes=["./dags:/opt/bordin/dags:ro", "${BORDIN_HOME_HOST:-./data}:/opt/bordin/var"]
        ),
        "./data",
    ),
    "dags folder elsewhere": (
        check_dags_folder,
        lambda c: _env(c, "airflow-dag-processor").update({DAGS_FOLDER_KEY: "/opt/airflow/dags"}),
        "/opt/airflow/dags",
    ),
    "different db conn": (
        check_same_db_conn,
        lambda c: _env(c, "airflow-scheduler").update({DB_CONN_KEY: "sqlite:////tmp/airflow.db"}),
        "disagree",
    ),
    "db host not a service": (
        check_same_db_conn,
        lambda c: [
            _env(c, name).update({DB_CONN_KEY: "postgresql+psycopg2://a:b@db:5432/airflow"})
            for name in airflow_services(c)
        ],
        "'db'",
    ),
    "missing BORDIN_HOME": (
        check_bordin_env,
        lambda c: _env(c, "airflow-triggerer").pop("BORDIN_HOME"),
        "BORDIN_HOME",
    ),
    "secret not granted": (
        check_bordin_env,
        lambda c: _svc(c, "airflow-scheduler").pop("secrets"),
        "bordin_pseudonym_key",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checker_reports_breakage(compose: dict[str, Any], breakage: str) -> None:
    check, mutate, expected = BREAKAGES[breakage]
    assert check(compose) == [], "the real compose file should pass before it is broken"
    problems = check(_break(compose, mutate))
    assert any(expected in problem for problem in problems), problems


def test_undocumented_required_var_is_reported(compose_text: str) -> None:
    broken = compose_text + "\nx-extra:\n  token: ${UNDOCUMENTED_TOKEN:?set it}\n"
    assert check_required_vars_documented(broken) == [
        "${UNDOCUMENTED_TOKEN} has no default and is not documented in the header comment"
    ]
    # A default, an escaped `$$` or a mention in a comment further down do not count.
    fine = compose_text + "\nx-extra:\n  a: ${WITH_DEFAULT:-x}\n  b: $${NOT_A_VAR}\n"
    assert check_required_vars_documented(fine) == []
    late = compose_text + "\n# NOT_IN_HEADER\nx-extra:\n  a: ${NOT_IN_HEADER}\n"
    assert check_required_vars_documented(late) != []


def test_base_image_mismatch_is_reported(dockerfile: str) -> None:
    assert check_base_image_matches_lock(dockerfile, "apache-airflow==9.9.9\n") != []
    assert check_base_image_matches_lock(dockerfile, "pyyaml==6.0\n") == [
        "requirements.lock does not pin apache-airflow==X"
    ]
    assert check_base_image_matches_lock("FROM python:3.11-slim\n", "apache-airflow==3.3.2\n")


def test_unpinned_dockerfile_base_is_reported() -> None:
    problems = check_images_pinned({"services": {}}, "FROM apache/airflow\n")
    assert problems == ["Dockerfile FROM: image 'apache/airflow' has no explicit tag"]
    assert check_images_pinned({"services": {}}, "FROM apache/airflow:latest AS base\n")
    assert check_images_pinned({"services": {}}, "FROM a/b:1.0 AS base\nFROM base\n") == []


def test_missing_copy_source_is_reported(dockerfile: str) -> None:
    broken = dockerfile + "COPY --chown=airflow:0 no_such_file.txt \\\n    other/ ./\n"
    problems = check_copy_sources_exist(broken, REPO_ROOT)
    assert any("no_such_file.txt" in p for p in problems)
    assert any("other/" in p for p in problems)
    assert check_copy_sources_exist('COPY ["missing.json", "./"]\n', REPO_ROOT)
    assert check_copy_sources_exist("COPY --from=build /app /app\n", REPO_ROOT) == []


def test_missing_installs_are_reported() -> None:
    problems = check_dockerfile_installs("FROM apache/airflow:3.3.2\nRUN pip install psycopg2\n")
    assert len(problems) == 2


def test_lock_without_a_postgres_driver_is_reported(lock: str) -> None:
    no_asyncpg = re.sub(r"^asyncpg==.*$", "", lock, flags=re.MULTILINE)
    assert check_lock_has_postgres_drivers(no_asyncpg) == [
        "requirements.lock does not pin asyncpg (name==version)"
    ]
    unpinned = re.sub(r"^psycopg2-binary==.*$", "psycopg2-binary", lock, flags=re.MULTILINE)
    assert check_lock_has_postgres_drivers(unpinned) == [
        "requirements.lock does not pin psycopg2-binary or psycopg2 (name==version)"
    ]
