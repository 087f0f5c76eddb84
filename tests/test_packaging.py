"""A non-editable install works: the wheel carries sources.yaml, the seeds and the topics.

`pip install .` (the route the systemd recipe describes) used to give a newsmon whose demo failed
with FileNotFoundError .../site-packages/seeds/... and whose check-config looked for
site-packages/sources.yaml. This builds a wheel from a copy of the tracked files, installs it
(without its dependencies) into a fresh virtual environment that borrows the test environment's
installed dependencies through a .pth file, and runs the demo and check-config from an empty
folder. The .pth adds the dependencies' folder to sys.path without processing the .pth files in
it, so the editable checkout is not importable there: only the wheel is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for name in ("setup.py", "MANIFEST.in"):  # new files not yet committed while developing
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def test_the_wheel_carries_its_data_and_the_demo_runs_from_it(tmp_path: Path) -> None:
    src = _tracked_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(src)], tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("newsmon-*.whl")

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    py = fresh / "bin" / "python"
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip())
    (site / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    installed = run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "--quiet",
                     str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = run([str(py), "-c", "import pipeline; print(pipeline.__file__)"], work, env)
    assert where.stdout.startswith(str(site)), where  # the wheel, not the checkout
    newsmon = str(fresh / "bin" / "newsmon")
    demo = run([newsmon, "demo", "--data-dir", str(work / "demo")], work, env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "newsmon alert: topic" in demo.stdout and "articles stored" in demo.stdout
    # The dashboard's templates and assets come with the wheel: its static report renders.
    report = run([newsmon, "report", "--data-dir", str(work / "demo"), "--out", str(work / "site")], work, env)
    assert report.returncode == 0, report.stderr[-3000:]
    index = (work / "site" / "index.html").read_text(encoding="utf-8")
    assert "<svg" in index and "data-series=" in index  # charts drawn by pygal from the wheel's deps
    assert ".block {" in index  # the style sheet, inline, from the wheel's templates

    # Without a sources file here, check-config says where the bundled defaults are; they work.
    bare = run([newsmon, "check-config"], work, env)
    assert bare.returncode == 2 and "curated default feeds ship at" in bare.stderr
    shipped = site / "pipeline" / "_bundled" / "sources.yaml"
    assert str(shipped) in bare.stderr and shipped.exists()
    ok = run([newsmon, "check-config", "--sources", str(shipped), "--data-dir", str(work / "data")], work, env)
    assert ok.returncode == 0, ok.stderr
    assert "(the bundled seed topics)" in ok.stdout and str(site) in ok.stdout
