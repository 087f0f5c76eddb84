"""`newsmon query` starts quickly because building the command line loads no heavy module.

Every command pays for what `build_parser()` imports (each command module is imported to register
its verbs). Timing the start-up would be flaky on a busy machine, so this asserts the cause: after
the parser is built, none of the modules that cost most of a second (topic matching with wordfreq,
Beam, trafilatura, the store, numpy) has been imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pipeline.topics", "pipeline.store", "pipeline.stories", "wordfreq", "apache_beam", "trafilatura",
         "numpy", "duckdb", "flask", "pygal")

PROBE = """
import json, sys
import pipeline.cli as cli
cli.build_parser()
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in HEAVY))))
"""


def test_building_the_command_line_imports_no_heavy_module() -> None:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"build_parser() imported {loaded}: import them inside the command that needs them"


def test_query_still_answers_after_the_lazy_imports(tmp_path) -> None:
    # The store a reader opens is made by the writer; an empty store is enough for SELECT 1.
    from pipeline.store import Store

    with Store.open(tmp_path):
        pass
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(tmp_path), "--format", "csv",
                        "SELECT 41 + 1 AS answer"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["answer", "42"]
