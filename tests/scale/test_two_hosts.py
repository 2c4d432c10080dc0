"""The two-host layout of docs/deploy.md, end to end, in two network namespaces of this machine.

    namespace A ("head host", 10.231.N.1)              namespace B ("second host", 10.231.N.2)
      S3 server (moto over HTTP)                          ray start --address=10.231.N.1:6379
      ray start --head --num-cpus=0 (token auth)            (the token, RAY_AUTH_MODE=token)
      Strataflow (API + scheduler, the Ray driver)  <-veth->  stage actors: every extraction runs here

The head offers no CPU, so every read task and stage actor must run on the second host, which
reads the manifest and the blobs from S3 over the veth link. A batch runs; its documents are
counted per object and its stage actors' node is checked. All traffic stays in the two
namespaces made here (SQLite and the S3 server live in A: the machine's PostgreSQL is not
reachable from them). Both namespaces, and every process started in them, are removed even
when the test fails; only the processes this test started are stopped, by their ids
(never `ray stop`, which would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
OBJECTS, SENTENCES = 12, 6

# Runs in namespace A: the Strataflow process of the guide (API + scheduler, the Ray driver).
_DRIVER = """
import collections, json, re, sys, time
import boto3, ray
from fastapi.testclient import TestClient
from strataflow.app import create_app
from strataflow.config import Settings
from strataflow.runtime import open_runtime
from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import wait_task

settings = Settings()
boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
             aws_access_key_id=settings.s3_access_key_id,
             aws_secret_access_key=settings.s3_secret_access_key).create_bucket(Bucket="strataflow")
runtime = open_runtime(settings)
with TestClient(create_app(runtime=runtime)) as client:
    client.headers.update({"Authorization": f"Bearer {settings.api_key}", "X-Namespace": "main"})
    client.post("/v1/namespaces", json={"namespace_name": "main"})
    bucket = make_bucket(client)
    collection = text_collection(client, "sentences", {"type": "bucket", "bucket_ids": [bucket]},
                                 split_by="sentences", chunk_size=1, model="wordllama")["collection_id"]
    text = " ".join(f"Sentence number {n} of this object." for n in range(int(sys.argv[2])))
    objects = [add_object(client, f"{text} Unique tail {i}.") for i in range(int(sys.argv[1]))]
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": objects}).json()["batch_id"]
    started = time.monotonic()
    task = client.post(f"/v1/buckets/docs/batches/{batch}/submit", json={}).json()["task_id"]
    status = wait_task(client, task, timeout=600)["status"]
    seconds = time.monotonic() - started
    logs = client.get(f"/v1/buckets/docs/batches/{batch}/logs").json()["tiers"][0]["logs"]
    documents = runtime.index.query(collection, None)
nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
runtime.close()
print("RESULT " + json.dumps({
    "status": status, "seconds": round(seconds, 1), "nodes": nodes,
    "actor_nodes": sorted({re.search(r" node (\\w+) ", l).group(1) for l in logs if l.startswith("actor ")}),
    "read_from": [l for l in logs if l.startswith("ray data: job ")],
    "per_object": collections.Counter(d.lineage["root_object_id"] for d in documents),
    "objects": objects, "ids": len({d.document_id for d in documents}), "documents": len(documents)}))
"""


@dataclass
class TwoHosts:
    token: str  # unique to this test: names, temp dirs, the processes it starts
    subnet: str
    a: str  # namespace names
    b: str
    temp: Path

    @property
    def head_ip(self) -> str:
        return f"{self.subnet}.1"

    @property
    def node_ip(self) -> str:
        return f"{self.subnet}.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@contextmanager
def _namespaces(tmp_path: Path) -> Iterator[TwoHosts]:
    token = secrets.token_hex(3)
    hosts = TwoHosts(
        token, f"10.231.{secrets.randbelow(250) + 1}", f"sfa-{token}", f"sfb-{token}", Path(f"/tmp/sf2h-{token}")
    )  # short: Ray's socket paths must stay under 107 bytes
    made: list[str] = []
    try:
        for name in (hosts.a, hosts.b):
            _ip("netns", "add", name)
            made.append(name)
        _ip("link", "add", f"sfva-{token}", "type", "veth", "peer", "name", f"sfvb-{token}")
        for end, name, ip in (("a", hosts.a, hosts.head_ip), ("b", hosts.b, hosts.node_ip)):
            _ip("link", "set", f"sfv{end}-{token}", "netns", name)
            _ip("-n", name, "addr", "add", f"{ip}/24", "dev", f"sfv{end}-{token}")
            _ip("-n", name, "link", "set", f"sfv{end}-{token}", "up")
            _ip("-n", name, "link", "set", "lo", "up")
        hosts.temp.mkdir(parents=True)
        yield hosts
    finally:
        for name in made:  # deleting a namespace removes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=30)
        shutil.rmtree(hosts.temp, ignore_errors=True)


def _ours(token: str) -> list[int]:
    """Processes whose command line names this test's temp dir: the Ray processes it started."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if f"sf2h-{token}".encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _stop(started: list[subprocess.Popen[str]], token: str) -> None:
    for process in started:  # `ray start --block` stops its node's processes on SIGTERM
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    for pid in _ours(token):  # what a dying node left behind (workers, agents): each by its id
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_port(netns: str, url: str, process: subprocess.Popen[str]) -> None:
    probe = f"import httpx; httpx.get({url!r}, timeout=1)"
    deadline = time.monotonic() + 60
    while (
        subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", probe], check=False, capture_output=True, timeout=30
        ).returncode
        != 0
    ):
        assert process.poll() is None and time.monotonic() < deadline, "the S3 server did not start"
        time.sleep(0.5)


def test_a_batch_on_a_two_host_ray_cluster_runs_its_extraction_on_the_second_host(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip netns add`)")
    try:
        subprocess.run(["ip", "netns", "add", "sfprobe-" + secrets.token_hex(2)], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"network namespaces cannot be made here: {exc.stderr.decode().strip()}")
    finally:
        listed = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout
        for line in listed.splitlines():
            if line.startswith("sfprobe-"):
                subprocess.run(["ip", "netns", "del", line.split()[0]], check=False, capture_output=True)

    with _namespaces(tmp_path) as hosts:
        started: list[subprocess.Popen[str]] = []
        ray_token = secrets.token_hex(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "STRATAFLOW_", "AWS_"))}
        # The guide's token authentication: the token and RAY_AUTH_MODE=token on every node and process.
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=ray_token, HOME=str(hosts.temp))
        try:

            def start(netns: str, *command: str) -> subprocess.Popen[str]:
                log = open(hosts.temp / f"{netns}-{len(started)}.log", "w")  # noqa: SIM115  closed with the process
                process = subprocess.Popen(
                    ["ip", "netns", "exec", netns, *command], env=env, text=True, stdout=log, stderr=subprocess.STDOUT
                )
                started.append(process)
                return process

            s3 = start(hosts.a, sys.executable, "-m", "moto.server", "-H", hosts.head_ip, "-p", "9000")
            _wait_port(hosts.a, f"http://{hosts.head_ip}:9000", s3)
            start(
                hosts.a,
                RAY,
                "start",
                "--head",
                "--block",
                f"--node-ip-address={hosts.head_ip}",
                "--port=6379",
                "--num-cpus=0",
                "--include-dashboard=false",
                "--dashboard-port=8265",
                f"--temp-dir={hosts.temp}/ray",
            )
            node = start(
                hosts.b,
                RAY,
                "start",
                "--block",
                f"--address={hosts.head_ip}:6379",
                f"--node-ip-address={hosts.node_ip}",
                "--num-cpus=2",
                f"--temp-dir={hosts.temp}/ray-b",
            )
            deadline = time.monotonic() + 300
            while True:  # `ray status` asks the head's GCS: both hosts are there once it lists two nodes
                status = subprocess.run(
                    ["ip", "netns", "exec", hosts.a, RAY, "status", f"--address={hosts.head_ip}:6379"],
                    check=False,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if status.stdout.count(" node_") >= 2:
                    break
                assert node.poll() is None and time.monotonic() < deadline, status.stdout + status.stderr
                time.sleep(2)
            data = tmp_path / "data"
            driver_env = {
                **env,
                "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
                "STRATAFLOW_DATA_DIR": str(data),
                "STRATAFLOW_API_KEY": "sk_two_hosts_admin_0123456789",
                "STRATAFLOW_ENGINE": "ray",
                "STRATAFLOW_RAY_ADDRESS": f"{hosts.head_ip}:6379",
                "STRATAFLOW_RAY_ACTOR_CPUS": "1",
                "STRATAFLOW_EXTRACT_BATCH_SIZE": "4",
                "STRATAFLOW_BLOB_URL": "s3://strataflow/data",
                "STRATAFLOW_S3_ENDPOINT_URL": f"http://{hosts.head_ip}:9000",
                "STRATAFLOW_S3_REGION": "us-east-1",
                "STRATAFLOW_S3_ACCESS_KEY_ID": "testing",
                "STRATAFLOW_S3_SECRET_ACCESS_KEY": "testing",
                "STRATAFLOW_S3_PATH_STYLE": "true",
                "STRATAFLOW_TASK_POLL_INTERVAL_S": "0.1",
            }
            driver = subprocess.run(
                ["ip", "netns", "exec", hosts.a, sys.executable, "-c", _DRIVER, str(OBJECTS), str(SENTENCES)],
                check=False,
                env=driver_env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            lines = [line for line in driver.stdout.splitlines() if line.startswith("RESULT ")]
            assert driver.returncode == 0 and lines, (driver.stdout[-3000:], driver.stderr[-5000:])
            result = json.loads(lines[0].removeprefix("RESULT "))
        finally:
            _stop(started, hosts.token)

    print(f"two hosts: batch of {OBJECTS} objects done in {result['seconds']}s; nodes {result['nodes']}")
    assert result["status"] == "COMPLETED"
    # Extraction ran on the second host, which read the manifest from S3 (no local file there).
    assert result["actor_nodes"] == [result["nodes"][hosts.node_ip]]
    assert any("read_parquet(s3://strataflow/data/" in line for line in result["read_from"])
    # Every object's sentences, once.
    assert result["per_object"] == {object_id: SENTENCES + 1 for object_id in result["objects"]}
    assert result["ids"] == result["documents"] == OBJECTS * (SENTENCES + 1)
