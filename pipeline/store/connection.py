"""Opening the lake: load the DuckLake and SQLite extensions from their PyPI packages, attach.

No extension is downloaded at run time (the daemon may run offline): the extension binaries come
from the `duckdb-extension-ducklake` and `duckdb-extension-sqlite` wheels, whose versions equal
duckdb's. DuckDB's own check of their signatures is skipped when no other user could have changed
them (see `_connect_config`). The SQLite extension is registered under the name
`sqlite_scanner`, and DuckDB derives the init symbol from the file name, so it is loaded from a
copy named `sqlite_scanner.duckdb_extension`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import duckdb

from pipeline.errors import StoreError

# Small inserts (a poll's few items) are kept in the catalog instead of one tiny Parquet file each.
INLINING_ROW_LIMIT = 200


def _extension_file(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise StoreError(f"the package {package}=={duckdb.__version__} is not installed; run `pip install -e .`")
    path = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise StoreError(
            f"{path} not found: {package} must have the same version as duckdb ({duckdb.__version__}); "
            f"run `pip install {package}=={duckdb.__version__}`"
        )
    return path


def _sqlite_extension() -> Path:
    src = _extension_file("duckdb_extension_sqlite", "sqlite")
    cache = Path(tempfile.gettempdir()) / f"newsmon-ext-{os.getuid()}" / f"v{duckdb.__version__}"
    dst = cache / "sqlite_scanner.duckdb_extension"
    if not dst.exists() or dst.stat().st_size != src.stat().st_size:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)  # private: see _connect_config
        tmp = cache / f".{os.getpid()}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)  # atomic: a concurrent opener never sees half a file
    return dst


def _private(directory: Path) -> bool:
    """Only this user (or root) can write `directory`, its parent and the files in it."""
    uid = os.getuid()
    for d in (directory, directory.parent):
        st = d.stat()
        if st.st_uid not in (uid, 0) or st.st_mode & 0o022:
            return False
    return all(f.stat().st_uid in (uid, 0) and not f.stat().st_mode & 0o022 for f in directory.iterdir())


def _connect_config() -> dict[str, bool]:
    """DuckDB's start-up options for a store connection.

    Checking an extension's signature reads and hashes all of its ~35 MB: 0.17 s of CPU per
    extension, half of what `newsmon query "SELECT 1"` costs. The check guards against a binary
    someone else swapped. The extensions come from the installed wheels (as trusted as the Python
    code running) and the SQLite copy from a cache directory made private to this user, so the
    check is skipped when that directory is private (owned by this user, writable by no one
    else) and kept otherwise. A reader still cannot LOAD anything: its configuration is sealed
    (`_seal`: no external access, locked)."""
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    try:
        if _private(_sqlite_extension().parent):
            config["allow_unsigned_extensions"] = True
    except OSError:
        pass
    return config


def data_dir_problem(data_dir: Path) -> str | None:
    """Why a writer could not use `data_dir`, without creating anything (None: it could)."""
    if data_dir.exists():
        if not data_dir.is_dir():
            return f"{data_dir} is a file, not a directory"
        return None if os.access(data_dir, os.W_OK | os.X_OK) else f"{data_dir} is not writable by this user"
    parent = data_dir.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{data_dir} cannot be created: {parent} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{data_dir} cannot be created: {parent} is not writable by this user"
    return None


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data directory for a writer, or say in one line why it cannot be used."""
    if data_dir.exists() and not data_dir.is_dir():
        raise StoreError(f"the data directory {data_dir} is a file, not a directory; pass another --data-dir")
    try:
        (data_dir / "lake").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the data directory {data_dir}: {e.strerror}; pass a writable --data-dir") from None
    if not os.access(data_dir, os.W_OK | os.X_OK) or not os.access(data_dir / "lake", os.W_OK | os.X_OK):
        raise StoreError(f"the data directory {data_dir} is not writable by this user; fix its owner or mode")


def _seal(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """Make a reader's connection read-only in every sense, not only towards the lake.

    The READ_ONLY attach refuses writes to the store, but analyst SQL could still write files
    (`COPY ... TO '/any/path'`), read any file the user can (`read_csv('/etc/...')`), attach other
    databases, or install and load extensions. With external access off, DuckDB touches only the
    allowed directories (the lake's Parquet files and the catalog beside them), and the locked
    configuration keeps a query from switching it back on."""
    root = data_dir.resolve()
    catalog = root / "catalog.sqlite"
    con.execute("SET allowed_directories = ?", [[f"{root / 'lake'}/"]])
    con.execute("SET allowed_paths = ?", [[str(catalog), f"{catalog}-journal", f"{catalog}-wal", f"{catalog}-shm"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def connect(data_dir: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and selected as the default."""
    catalog = data_dir / "catalog.sqlite"
    lake_files = data_dir / "lake"
    if not read_only:
        lake_files.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config=_connect_config())
    try:
        con.execute(f"LOAD '{_extension_file('duckdb_extension_ducklake', 'ducklake')}'")
        con.execute(f"LOAD '{_sqlite_extension()}'")
        # OVERRIDE_DATA_PATH: the catalog remembers the data path it was created with, and DuckLake
        # refuses an ATTACH that names another one. The file paths inside are relative to it, so a
        # store copied, restored or mounted elsewhere is whole: the lake is where the catalog is.
        opts = [f"DATA_PATH '{lake_files}/'", "OVERRIDE_DATA_PATH true"]
        if read_only:
            opts.append("READ_ONLY")
        else:
            opts.append(f"DATA_INLINING_ROW_LIMIT {INLINING_ROW_LIMIT}")
        con.execute(f"ATTACH 'ducklake:sqlite:{catalog}' AS lake ({', '.join(opts)})")
        con.execute("USE lake")
        con.execute("SET TimeZone = 'UTC'")
        if read_only:
            _seal(con, data_dir)
    except duckdb.Error as e:
        con.close()
        raise StoreError(f"cannot open the store at {data_dir}: {e}") from e
    return con
