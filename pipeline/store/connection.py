"""Opening the lake: load the DuckLake and SQLite extensions from their PyPI packages, attach.

No extension is downloaded at run time (the daemon may run offline): the extension binaries come
from the `duckdb-extension-ducklake` and `duckdb-extension-sqlite` wheels, whose versions equal
duckdb's. DuckDB checks their signatures on LOAD. The SQLite extension is registered under the name
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
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{os.getpid()}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)  # atomic: a concurrent opener never sees half a file
    return dst


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
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
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
