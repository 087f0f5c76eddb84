"""Opening the lake: load the DuckLake and SQLite extensions from their PyPI packages, attach.

Where the lake lives is a `StoreLocation`: by default the catalog is `<data_dir>/catalog.sqlite` and
the Parquet files are under `<data_dir>/lake/` (the embedded store). `store.catalog:
postgres://user@host:port/db` puts the catalog in PostgreSQL (DuckDB's postgres extension, from the
`duckdb-extension-postgres-scanner` wheel) and `store.data_path: s3://bucket/prefix/` puts the files
in an S3-compatible object store (the httpfs extension, from `duckdb-extension-httpfs`). The data
directory then keeps only this node's own state (writer lock, spool files, the saved story index).

Secrets never sit in the settings: the catalog password comes from libpq's own environment
(PGPASSWORD, or a ~/.pgpass / PGPASSFILE), the object store's keys from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), its address from AWS_ENDPOINT_URL (left out for AWS
itself) and its region from AWS_REGION. A URL that carries a password is refused.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

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
@dataclass(frozen=True)
class StoreLocation:
    """Where the catalog and the data files are; None for either means "in the data directory".

    `catalog`: None (SQLite in the data directory) or a `postgres://user@host:port/dbname` URL
    (`postgresql://` too; `?sslmode=...` and other libpq keywords pass through). `data_path`: None
    (`<data_dir>/lake/`), an absolute directory, or `s3://bucket/prefix/`."""

    catalog: str | None = None
    data_path: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreLocation:
        """NEWSMON_STORE_CATALOG and NEWSMON_STORE_DATA_PATH (unset or empty: the data directory)."""
        env = os.environ if env is None else env
        return cls(env.get("NEWSMON_STORE_CATALOG") or None, env.get("NEWSMON_STORE_DATA_PATH") or None)

    @property
    def embedded_catalog(self) -> bool:
        return self.catalog is None

    @property
    def remote_data(self) -> bool:
        return self.data_path is not None and self.data_path.startswith("s3://")

    def problem(self) -> str | None:
        """Why these settings cannot work, in one line with the fix (None: they can)."""
        if self.catalog is not None:
            try:
                _pg_dsn(self.catalog)
            except StoreError as e:
                return str(e)
        if self.data_path is not None:
            if "://" in self.data_path and not self.data_path.startswith("s3://"):
                return (f"store.data_path {self.data_path!r}: only s3://bucket/prefix/ or an absolute directory "
                        "is supported")
            if self.data_path.startswith("s3://") and not urlsplit(self.data_path).netloc:
                return f"store.data_path {self.data_path!r} names no bucket; write s3://bucket/prefix/"
            if "://" not in self.data_path and not os.path.isabs(self.data_path):
                return f"store.data_path {self.data_path!r} must be an absolute directory or s3://bucket/prefix/"
        return None

    def describe(self, data_dir: Path) -> str:
        """For messages and logs: no secret is ever part of a location."""
        return f"catalog {self.catalog or data_dir / 'catalog.sqlite'}, data {self.data_path or data_dir / 'lake'}"


def _pg_dsn(url: str) -> str:
    """`postgres://user@host:port/db?k=v` -> the libpq keyword string DuckLake's ATTACH takes."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise StoreError(f"store.catalog {url!r}: only postgres://user@host:port/dbname is supported "
                         "(leave it unset for the embedded SQLite catalog)")
    if parts.password:
        raise StoreError("store.catalog must not carry a password; put it in the PGPASSWORD environment variable "
                         "or a ~/.pgpass file")
    db = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not db:
        raise StoreError(f"store.catalog {url!r} needs a host and a database name: postgres://user@host:5432/dbname")
    kv = {"host": parts.hostname, "dbname": db}
    if parts.port:
        kv["port"] = str(parts.port)
    if parts.username:
        kv["user"] = unquote(parts.username)
    for k, v in parse_qsl(parts.query):
        if k == "password":
            raise StoreError("store.catalog must not carry a password; use PGPASSWORD or ~/.pgpass")
        kv[k] = v
    for k, v in kv.items():
        if any(c in v for c in " '\\"):
            raise StoreError(f"store.catalog: the {k} {v!r} holds a space, quote or backslash; rename it")
    return " ".join(f"{k}={v}" for k, v in kv.items())


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _s3_secret(con: duckdb.DuckDBPyConnection, env: Mapping[str, str]) -> None:
    """A temporary (in-memory) DuckDB secret for the object store, from the AWS_* environment."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise StoreError("store.data_path is on s3:// but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is empty; "
                         "export the object store's keys")
    opts = [f"KEY_ID {_sql_str(key)}", f"SECRET {_sql_str(secret)}",
            f"REGION {_sql_str(env.get('AWS_REGION') or env.get('AWS_DEFAULT_REGION') or 'us-east-1')}"]
    if env.get("AWS_SESSION_TOKEN"):
        opts.append(f"SESSION_TOKEN {_sql_str(env['AWS_SESSION_TOKEN'])}")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:  # a self-hosted store (SeaweedFS, MinIO, Garage, Ceph): path-style URLs
        ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        opts += [f"ENDPOINT {_sql_str(ep.netloc)}", "URL_STYLE 'path'",
                 f"USE_SSL {'true' if ep.scheme == 'https' else 'false'}"]
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET newsmon_s3 (TYPE s3, {', '.join(opts)})")


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


def _seal(con: duckdb.DuckDBPyConnection, data_dir: Path, location: StoreLocation) -> None:
    """Make a reader's connection read-only in every sense, not only towards the lake.

    The READ_ONLY attach refuses writes to the store, but analyst SQL could still write files
    (`COPY ... TO '/any/path'`), read any file the user can (`read_csv('/etc/...')`), attach other
    databases, or install and load extensions. With external access off, DuckDB touches only the
    allowed directories (the lake's Parquet files and the catalog beside them), and the locked
    configuration keeps a query from switching it back on."""
    root = data_dir.resolve()
    con.execute("SET allowed_directories = ?", [[_data_path(data_dir, location)]])
    if location.embedded_catalog:
        catalog = root / "catalog.sqlite"
        con.execute("SET allowed_paths = ?", [[str(catalog), f"{catalog}-journal", f"{catalog}-wal", f"{catalog}-shm"]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _data_path(data_dir: Path, location: StoreLocation) -> str:
    if location.data_path is None:
        return f"{(data_dir / 'lake').resolve()}/"
    return location.data_path.rstrip("/") + "/"


def catalog_exists(data_dir: Path, location: StoreLocation | None = None) -> bool:
    """Is there a store to read? For a Postgres catalog, a reader's ATTACH answers (see connect)."""
    location = StoreLocation.from_env() if location is None else location
    return not location.embedded_catalog or (data_dir / "catalog.sqlite").exists()


def connect(
    data_dir: Path, *, read_only: bool = False, location: StoreLocation | None = None,
    env: Mapping[str, str] | None = None, disabled_optimizers: Sequence[str] = (),
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and selected as the default.

    `location` None: from NEWSMON_STORE_CATALOG / NEWSMON_STORE_DATA_PATH, else the data directory.
    `disabled_optimizers`: DuckDB optimizer passes this connection skips (set before a reader's
    configuration is sealed); see pipeline/dashboard/app.py for why the dashboard skips two."""
    env = os.environ if env is None else env
    location = StoreLocation.from_env(env) if location is None else location
    problem = location.problem()
    if problem:
        raise StoreError(problem)
    data_path = _data_path(data_dir, location)
    if not read_only and not location.remote_data:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config=_connect_config())
    try:
        con.execute(f"LOAD '{_extension_file('duckdb_extension_ducklake', 'ducklake')}'")
        if location.embedded_catalog:
            con.execute(f"LOAD '{_sqlite_extension()}'")
            target = f"sqlite:{data_dir / 'catalog.sqlite'}"
        else:
            con.execute(f"LOAD '{_extension_file('duckdb_extension_postgres_scanner', 'postgres_scanner')}'")
            target = f"postgres:{_pg_dsn(location.catalog or '')}"
        if location.remote_data:
            con.execute(f"LOAD '{_extension_file('duckdb_extension_httpfs', 'httpfs')}'")
            _s3_secret(con, env)
        # OVERRIDE_DATA_PATH: the catalog remembers the data path it was created with, and DuckLake
        # refuses an ATTACH that names another one. The file paths inside are relative to it, so a
        # store copied, restored or mounted elsewhere is whole: the lake is where the catalog is.
        opts = [f"DATA_PATH {_sql_str(data_path)}", "OVERRIDE_DATA_PATH true"]
        if read_only:
            opts.append("READ_ONLY")
        else:
            opts.append(f"DATA_INLINING_ROW_LIMIT {INLINING_ROW_LIMIT}")
        con.execute(f"ATTACH {_sql_str('ducklake:' + target)} AS lake ({', '.join(opts)})")
        con.execute("USE lake")
        con.execute("SET TimeZone = 'UTC'")
        if disabled_optimizers:
            con.execute(f"SET disabled_optimizers = {_sql_str(','.join(disabled_optimizers))}")
        if read_only:
            _seal(con, data_dir, location)
    except duckdb.Error as e:
        con.close()
        # The message names the location, never a secret (the DSN holds none: see _pg_dsn).
        if read_only and "creating a new DuckLake is explicitly disabled" in str(e):
            raise StoreError(
                f"no newsmon store in {location.describe(data_dir)}; run `newsmon run --once` or `newsmon demo` "
                "against it first, or check store.catalog / NEWSMON_STORE_CATALOG"
            ) from None
        raise StoreError(f"cannot open the store ({location.describe(data_dir)}): {e}") from e
    return con
