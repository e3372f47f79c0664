"""The runtime image (deploy/Dockerfile) serves from rtrank's wheel alone: runtime
dependencies only, no dev or bench extras, no Java, no source tree.

There is no Docker engine here: the Dockerfile is read, and the wheel it installs is built
the way its first stage builds it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {"rtrank/streams": "streams", "rtrank/model": "model", "rtrank/deploy": "deploy"}


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, stage by stage: (KEYWORD, arguments), continued lines
    joined and comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "deploy" / "Dockerfile").read_text())
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, args = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            out.append([])
        out[-1].append((keyword.upper(), args.strip()))
    return out


def runtime_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_the_runtime_stage_installs_only_the_wheel_built_before_it() -> None:
    build, runtime = stages()[0], runtime_stage()
    assert any(k == "RUN" and "pip wheel" in a and "--no-deps" in a for k, a in build)
    copies = [a for k, a in runtime if k in ("COPY", "ADD")]
    assert copies and all(a.startswith("--from=") for a in copies)
    installs = [a for k, a in runtime if k == "RUN" and "pip install" in a]
    assert installs == ["pip install /wheels/*.whl && rm -rf /wheels"]  # no extras, no source


def test_the_runtime_stage_installs_no_system_packages() -> None:
    """No Java (Kafka runs in its own image), no curl: the health check uses Python."""
    runs = " ".join(a for k, a in runtime_stage() if k == "RUN")
    assert not re.search(r"apt-get|apk |java|jdk|jre|maven|curl", runs)
    health = next(a for k, a in runtime_stage() if k == "HEALTHCHECK")
    assert "python" in health and "/health" in health and "curl" not in health


def test_the_image_runs_a_worker_whose_web_port_it_exposes_and_probes() -> None:
    runtime = dict(runtime_stage())
    assert runtime["CMD"] == '["rtrank", "worker", "-l", "info"]'
    port = runtime["EXPOSE"]
    assert f"localhost:{port}/health" in runtime["HEALTHCHECK"]


def test_runtime_dependencies_hold_no_dev_or_bench_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {requirement_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    tools = {requirement_name(r) for r in extras["dev"] + extras["bench"]}
    assert not runtime & tools
    assert {"pytest", "ruff", "import-linter", "matplotlib"} <= tools


def test_the_rtrank_command_and_the_model_process_load_without_the_bench_extra() -> None:
    """The image has no bench extra: the CLI (which registers the bench commands) and the
    model process must import only their runtime dependencies at load."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bench_only = sorted(requirement_name(r) for r in extras["optional-dependencies"]["bench"])
    blocker = f"""
import sys
class NoBenchExtra:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {bench_only!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (the bench extra)")
sys.meta_path.insert(0, NoBenchExtra())
import rtrank.streams.cli.main
import rtrank.streams.scorer.model_process
"""
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert bench_only  # the blocker had something to block


def test_the_wheel_holds_every_module_and_the_kafka_pom(tmp_path: Path) -> None:
    """The image has nothing but the wheel: a subpackage missing from pyproject's package
    list would be missing from it."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in PACKAGES.values():
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "wheels"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheels").glob("rtrank-*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        f"{package}/{path.relative_to(tmp_path / folder).as_posix()}"
        for package, folder in PACKAGES.items()
        for path in (tmp_path / folder).rglob("*.py")
    }
    assert sources - in_wheel == set()
    assert "rtrank/deploy/kafka/pom.xml" in in_wheel


def test_the_image_listens_on_every_interface() -> None:
    """rtrank's default is loopback; a container is reached from outside it."""
    env = " ".join(a for k, a in runtime_stage() if k == "ENV")
    assert "RTRANK_WEB_BIND=0.0.0.0" in env.split()
