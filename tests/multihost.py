"""Three worker "hosts" against one broker and one database (issue 9, item 15).

Run as root (it makes network namespaces): ``python tests/multihost.py``; the test
suite runs it too (tests/faults/test_multihost.py) where namespaces can be made.

It builds a bridge ``hm<run>0`` (10.231.X.1/24, X free on this machine) on the host
side and three network namespaces ``hm<run>1..3`` (10.231.X.11-13), each joined to it
by a veth pair; the
addresses exist only inside this machine, on links this script made. On the host
side it starts a redis-server (broker and shared state) and a PostgreSQL cluster of
its own, both listening on 10.231.0.1, and a fake provider on 10.231.0.1. In each
namespace it starts a prefork worker (``-c 2``) and a beat. Then it shows:

1. a per-minute quota is exact across the hosts: N calls pass, the rest are refused,
   and one asked to wait is held until the next window (checked last, as 5.);
2. a breaker opened by failures seen on some hosts is open on all of them;
3. one idempotent write sent from every host at once executes exactly once;
4. exactly one beat is active, and a killed one is replaced within the bound of
   issue 9 item 5 (HUB_BEAT_LOCK_TIMEOUT, 30 s, plus a second).

Everything it made is removed at the end (namespaces, links, processes, data).
Output recorded in docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from celery import Celery
from cryptography.fernet import Fernet

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.dev.embedded import create_database, with_database
from hub.platform import migrate
from hub.platform.config import load_settings
from hub.platform.dispatch import RecordingDispatcher
from hub.platform.services import Services
from tests.calls.fake_provider import FakeProvider, Reply
from tests.faults.beat import BeatProcess, wait_for
from tests.faults.servers import PostgresCluster, RedisServer
from tests.hub.fake_http import serve


def _free_subnet() -> int:
    """A third octet X whose 10.231.X.0/24 no link of this machine uses (concurrent runs)."""
    taken = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True,
                           check=True).stdout
    for _ in range(100):
        octet = secrets.randbelow(254) + 1
        if f"10.231.{octet}." not in taken:
            return octet
    raise RuntimeError("no free 10.231.X.0/24 subnet")


RUN = secrets.token_hex(3)
BRIDGE = f"hm{RUN}0"  # interface names stay within 15 characters
PREFIX = f"10.231.{_free_subnet()}"
HOST_IP = f"{PREFIX}.1"
HOSTS = [f"hm{RUN}{i}" for i in (1, 2, 3)]
TENANT = "multihost"


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def network() -> Iterator[None]:
    """The bridge and three namespaces, removed on exit."""
    try:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for n, ns in enumerate(HOSTS, start=1):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", f"{ns}h", "type", "veth", "peer", "name", f"{ns}n")
            sh("ip", "link", "set", f"{ns}h", "master", BRIDGE, "up")
            sh("ip", "link", "set", f"{ns}n", "netns", ns)
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{PREFIX}.1{n}/24", "dev",
               f"{ns}n")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", f"{ns}n", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield
    finally:
        for ns in HOSTS:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", f"{ns}h"], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


class Worker:
    def __init__(self, ns: str, env: dict[str, str], workdir: Path) -> None:
        self.name = f"{ns}@multihost"
        log = open(workdir / f"worker-{ns}.log", "wb")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "celery", "-A", "tasks",
             "worker", "--pool", "prefork", "-c", "2", "-n", self.name, "-l", "WARNING",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def call(client: Celery, integration: str, operation: str, path: str, **kwargs: object):
    return client.send_task("hub.call", queue="calls", kwargs={
        "tenant": TENANT, "integration": integration, "operation": operation,
        "params": {"path": path}, "cache": False, **kwargs})


def outcome(result) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """(ok or the error code, the worker host that ran it)."""
    try:
        result.get(timeout=60, propagate=True)
        code = "ok"
    except Exception as exc:  # noqa: BLE001 - the envelope is the first argument
        code = exc.args[0]["error"]["code"] if exc.args and isinstance(exc.args[0], dict) \
            else type(exc).__name__
    return code, str(result.worker or "?").split("@")[0]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    workdir = Path(f"/tmp/hub-multihost-{os.getpid()}")
    workdir.mkdir()
    with ExitStack() as stack:
        stack.enter_context(network())
        redis_server = RedisServer(bind=HOST_IP)
        redis_server.start()
        stack.callback(redis_server.close)
        pg = PostgresCluster(listen=f"{HOST_IP},127.0.0.1")
        pg.init()
        with open(pg.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {PREFIX}.0/24 trust\n")
        pg.start()
        stack.callback(pg.close)
        db = with_database(pg.url, "hub").replace("127.0.0.1", HOST_IP)
        create_database(pg.url, "hub")
        env = {**os.environ, "HUB_DATABASE_URL": db, "HUB_REDIS_URL": redis_server.url,
               "HUB_BROKER_URL": redis_server.url, "HUB_QUEUE_PREFIX": "",
               "HUB_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
               "HUB_ALLOW_PRIVATE_NETWORKS": "1", "HUB_LOG_FORMAT": "text"}
        settings = load_settings(env)
        migrate.upgrade(settings)
        provider = FakeProvider()
        provider.server = stack.enter_context(serve(provider.handle, host=HOST_IP))
        services = Services(settings, RecordingDispatcher())
        stack.callback(services.close)
        add = _integration_maker(services, provider)
        workers = [Worker(ns, env, workdir) for ns in HOSTS]
        for worker in workers:
            stack.callback(worker.stop)
        client = Celery("multihost-client", broker=redis_server.url,
                        backend=settings.effective_result_backend)
        client.conf.update(result_extended=True, task_serializer="json")
        stack.callback(client.close)
        wait_for(lambda: len(client.control.ping(timeout=1)) == 3, 120, "three workers answer")
        print(f"hosts: {', '.join(f'{ns} {PREFIX}.1{n}' for n, ns in enumerate(HOSTS, 1))}; "
              f"broker and database on {HOST_IP}")

        check_waiting_call = quota(client, provider, add)
        breaker(client, provider, add)
        idempotent_write(client, provider, add)
        beats(env, workdir, redis_server.url)
        check_waiting_call()
    shutil.rmtree(workdir, ignore_errors=True)


def _integration_maker(services: Services, provider: FakeProvider):  # type: ignore[no-untyped-def]
    def add(name: str, **spec: object) -> None:
        with services.sessions() as session, session.begin():
            integrations.create(session, IntegrationSpec(
                tenant_id=TENANT, name=name, adapter="rest", base_url=provider.url,
                auth_type="api_key", **spec))  # type: ignore[arg-type]
            integrations.set_credentials(session, services.vault, TENANT, name,
                                         {"api_key": provider.api_key})
    return add


def quota(client: Celery, provider: FakeProvider, add):  # type: ignore[no-untyped-def]
    """N calls of a full window pass across the hosts, the rest are refused; one more
    asked to wait is held until the next window. Returns the check of that one, run
    at the end so that its wait overlaps the other scenarios."""
    limit, sent = 6, 15
    add("quota", rate_limit_per_minute=limit)
    if time.time() % 60 > 50:  # the burst (a few seconds) must fit in one fixed minute window
        time.sleep(60 - time.time() % 60)
    window_end = (time.time() // 60 + 1) * 60
    results = [call(client, "quota", "get", "/v1/quota", on_rate_limit="fail")
               for _ in range(sent)]
    outcomes = [outcome(r) for r in results]
    codes = Counter(code for code, _ in outcomes)
    hosts = Counter(host for _, host in outcomes)
    waiting = call(client, "quota", "get", "/v1/quota")  # on_rate_limit="wait"
    wait_for(lambda: waiting.state == "RETRY", 60, "the call over the quota re-scheduled")
    held = provider.hits("/v1/quota") == limit
    print(f"1. quota {limit}/min, {sent} calls from {len(hosts)} hosts {dict(hosts)}: "
          f"{dict(codes)}; provider saw {provider.hits('/v1/quota')}; one more asked to "
          f"wait is {'held' if held else 'NOT held'}")
    assert codes["ok"] == limit == provider.hits("/v1/quota") and len(hosts) >= 2
    assert held

    def waited_for_the_next_window() -> None:
        code, host = outcome(waiting)
        done = time.time()
        print(f"5. the call that waited on the full quota ran on {host} "
              f"{done - window_end:+.1f}s after its window ended: {code}; provider saw "
              f"{provider.hits('/v1/quota')}")
        assert code == "ok" and done >= window_end
        assert provider.hits("/v1/quota") == limit + 1
    return waited_for_the_next_window


def breaker(client: Celery, provider: FakeProvider, add) -> None:  # type: ignore[no-untyped-def]
    threshold = 3
    add("flaky", config={"breaker": {"failure_threshold": threshold, "recovery_timeout": 300},
                         "retry": {"max_attempts": 1}})
    provider.script("/v1/flaky", *[Reply(500) for _ in range(20)])
    first = [outcome(call(client, "flaky", "get", "/v1/flaky")) for _ in range(threshold)]
    later = [outcome(r) for r in [call(client, "flaky", "get", "/v1/flaky") for _ in range(9)]]
    open_on = sorted({host for code, host in later if code == "CIRCUIT_OPEN"})
    print(f"2. breaker (opens after {threshold}): failures on {sorted({h for _, h in first})}, "
          f"then {Counter(c for c, _ in later)} on hosts {open_on}; provider saw "
          f"{provider.hits('/v1/flaky')}")
    assert all(code == "CIRCUIT_OPEN" for code, _ in later) and len(open_on) >= 2
    assert provider.hits("/v1/flaky") == threshold


def idempotent_write(client: Celery, provider: FakeProvider, add) -> None:  # type: ignore[no-untyped-def]
    add("writes")
    provider.script("/v1/charge", Reply(200, {"charged": True}, delay=1.0))
    key = f"charge-{uuid.uuid4().hex}"
    results = [call(client, "writes", "post", "/v1/charge", idempotency_key=key)
               for _ in range(6)]
    outcomes = [outcome(r) for r in results]
    print(f"3. one write, one key, 6 sends run on {sorted({h for _, h in outcomes})}: "
          f"{Counter(c for c, _ in outcomes)}; provider executed it "
          f"{provider.hits('/v1/charge')} time(s)")
    assert provider.hits("/v1/charge") == 1


def beats(env: dict[str, str], workdir: Path, redis_url: str) -> None:
    hub_env = {k: v for k, v in env.items() if k.startswith("HUB_")}
    running = [BeatProcess(redis_url, env=hub_env, netns=ns) for ns in HOSTS]
    try:
        wait_for(lambda: sum(b.active() for b in running) == 1, 90, "one beat active")
        time.sleep(6)
        active = [HOSTS[i] for i, b in enumerate(running) if b.active()]
        assert len(active) == 1, active
        victim = running[HOSTS.index(active[0])]
        victim.kill()
        took = wait_for(lambda: any(b.active() for b in running if b is not victim), 90,
                        "a standby takes over")
        successor = [HOSTS[i] for i, b in enumerate(running) if b is not victim and b.active()]
        print(f"4. beats on 3 hosts: exactly one active ({active[0]}); killed -9, "
              f"{successor[0]} took over after {took:.1f}s")
        assert took < 60
    finally:
        for beat in running:
            beat.stop()


if __name__ == "__main__":
    main()
