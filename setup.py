"""Build hook: the project's data files ship inside the wheel.

Everything else is in pyproject.toml. `newsmon demo`, `check-config` and the daemon read
sources.yaml, seeds/ (the topics and their exemplar documents) and quality/floors.json. They live
at the top of the repository, where people edit them, not inside the package, so `pip install .`
used to install a newsmon that looked for them in site-packages and failed. This copies them to
`pipeline/_bundled/` in the build; `pipeline.config.bundled()` finds them there when installed,
and in the checkout otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("sources.yaml", "seeds", "quality/floors.json")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "pipeline" / "_bundled"
        for name in BUNDLED:
            src = ROOT / name
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)


setup(cmdclass={"build_py": BuildWithData})
