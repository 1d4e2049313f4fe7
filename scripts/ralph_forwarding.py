"""A real LRS in front of spoc-engine: Ralph takes the statements and
forwards them to the engine, whose mastery must change.

Run by scripts/ralph-forwarding.sh inside a virtual environment holding
ralph-malph[lrs,cli], requests and grpcio-tools. Steps:

1. start `spoc serve` on free ports with a data folder (kept with
   --data-dir, else temporary);
2. through gRPC with the store's admin key: create an `lms` key, and a
   catalog of one skill tested by every activity the statements answer;
3. start Ralph (file-system backend) forwarding every statement to the
   engine's /xapi/statements with that key;
4. send the statements to Ralph: the first by PUT, the second by POST
   alone, the rest as one POST batch;
5. wait until the engine has every answer (forwarding runs after Ralph
   replies) and check each learner's mastery: unknown before, it now
   counts every answer it gave; print a JSON summary.

Exit status 0 when every learner has exactly its answers as attempts.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SKILL = "forwarded-answers"
ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
RALPH_USER, RALPH_PASSWORD = "lms", "ralph-forwarding-demo"
# How long to wait for a server to start or for forwarding to land.
WAIT_SECONDS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, seconds=WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def grpc_stubs(work):
    """Compiles proto/ into Python modules under `work` and imports them."""
    from grpc_tools import protoc

    out = work / "stubs"
    out.mkdir(exist_ok=True)
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + protos
    )
    if code != 0:
        raise SystemExit("compiling proto/ for Python failed")
    sys.path.insert(0, str(out))
    import importlib

    names = ["admin_service", "catalog_service", "mastery_service"]
    return {n: (importlib.import_module(f"spoc.v1.{n}_pb2"), importlib.import_module(f"spoc.v1.{n}_pb2_grpc")) for n in names}


class Engine:
    """`spoc serve` on free ports, and gRPC calls with the admin key."""

    def __init__(self, spoc, data_dir, work):
        import grpc

        self.grpc_port, self.http_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [
                spoc, "serve",
                "--listen", f"127.0.0.1:{self.grpc_port}",
                "--http-listen", f"127.0.0.1:{self.http_port}",
                "--data-dir", str(data_dir),
            ],
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        wait_until("spoc serve", lambda: listening(self.grpc_port) and listening(self.http_port))
        self.admin_key = (data_dir / "admin-key").read_text().strip()
        self.pb = grpc_stubs(work)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.metadata = [("authorization", f"Bearer {self.admin_key}")]

    def stub(self, service, name):
        return getattr(self.pb[service][1], f"{name}Stub")(self.channel)

    def create_lms_key(self):
        admin, _ = self.pb["admin_service"]
        reply = self.stub("admin_service", "AdminService").CreateApiKey(
            admin.CreateApiKeyRequest(role=admin.API_KEY_ROLE_LMS, display_name="Ralph forwarding"),
            metadata=self.metadata,
        )
        return reply.secret

    def import_catalog(self, activities):
        catalog, _ = self.pb["catalog_service"]
        self.stub("catalog_service", "CatalogService").ImportCatalog(
            catalog.ImportCatalogRequest(
                skills=[catalog.Skill(id=SKILL, name="Answers forwarded by Ralph")],
                items=[catalog.Item(id=a, skill_ids=[SKILL]) for a in sorted(activities)],
            ),
            metadata=self.metadata,
        )

    def mastery(self, learner):
        mastery, _ = self.pb["mastery_service"]
        reply = self.stub("mastery_service", "MasteryService").GetMastery(
            mastery.GetMasteryRequest(learner_id=learner, skill_ids=[SKILL]), metadata=self.metadata
        )
        skill = reply.skills[0]
        return skill.p_mastered, skill.attempt_count

    def stop(self):
        self.channel.close()
        stop(self.process)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_ralph(work, engine_url, lms_key):
    """Ralph on a free port, file-system backend, forwarding to the engine."""
    app_dir, statements_dir = work / "ralph-app", work / "ralph-statements"
    app_dir.mkdir(exist_ok=True)
    statements_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "RALPH_APP_DIR": str(app_dir),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(statements_dir),
        "RALPH_XAPI_FORWARDINGS": json.dumps(
            [
                {
                    "is_active": True,
                    "url": engine_url,
                    "basic_username": "ralph",
                    "basic_password": lms_key,
                    "max_retries": 1,
                    "timeout": 5,
                }
            ]
        ),
    }
    ralph = shutil.which("ralph", path=str(Path(sys.executable).parent)) or "ralph"
    subprocess.run(
        [ralph, "auth", "-u", RALPH_USER, "-p", RALPH_PASSWORD, "-s", "all", "-M", "mailto:lms@example.com", "-w"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-ralph", str(port)], env=env)
    wait_until("Ralph", lambda: listening(port))
    return process, f"http://127.0.0.1:{port}/xAPI/statements"


def serve_ralph(port):
    """Ralph's app in this process (no `ralph runserver`, whose reloader
    starts a fresh process), its file-system backend appending: by default
    it creates one file and fails on the second write."""
    import uvicorn
    from ralph.backends.data.base import BaseOperationType
    from ralph.backends.data.fs import FSDataBackend

    FSDataBackend.default_operation_type = BaseOperationType.APPEND
    uvicorn.run("ralph.api:app", host="127.0.0.1", port=port, log_level="warning")


def send_to_ralph(url, statements):
    """PUT the first, POST the second alone, POST the rest as a batch."""
    auth = (RALPH_USER, RALPH_PASSWORD)
    headers = {"X-Experience-API-Version": "1.0.3"}
    first, second, rest = statements[0], statements[1], statements[2:]
    replies = [
        requests.put(url, params={"statementId": first["id"]}, json=first, auth=auth, headers=headers, timeout=30),
        requests.post(url, json=second, auth=auth, headers=headers, timeout=30),
        requests.post(url, json=rest, auth=auth, headers=headers, timeout=30),
    ]
    for reply in replies:
        if reply.status_code not in (200, 204):
            raise SystemExit(f"Ralph refused {reply.request.method}: {reply.status_code} {reply.text}")


def learner_of(statement):
    actor = statement["actor"]
    return actor["mbox"].removeprefix("mailto:") if "mbox" in actor else actor["account"]["name"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-ralph", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spoc", default=os.environ.get("SPOC_BIN", "spoc"), help="the spoc binary")
    parser.add_argument("--data-dir", type=Path, help="the engine's data folder, kept (default: temporary)")
    parser.add_argument(
        "--statements",
        type=Path,
        default=ROOT / "tests/fixtures/xapi/ralph_statements.json",
        help="a JSON array of at least 3 statements",
    )
    args = parser.parse_args()
    if args.serve_ralph:
        serve_ralph(args.serve_ralph)
        return

    statements = json.loads(args.statements.read_text())
    if not isinstance(statements, list) or len(statements) < 3:
        raise SystemExit("--statements must hold an array of at least 3 statements")
    answers = [s for s in statements if s["verb"]["id"] == ANSWERED]
    expected = {}
    for s in answers:
        expected[learner_of(s)] = expected.get(learner_of(s), 0) + 1

    work = Path(tempfile.mkdtemp(prefix="ralph-forwarding-"))
    data_dir = args.data_dir or work / "engine"
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = ralph = None
    try:
        engine = Engine(args.spoc, data_dir, work)
        lms_key = engine.create_lms_key()
        engine.import_catalog({s["object"]["id"] for s in answers})
        ralph, ralph_url = start_ralph(work, f"http://127.0.0.1:{engine.http_port}/xapi/statements", lms_key)
        send_to_ralph(ralph_url, statements)

        def all_forwarded():
            now = {}
            for learner in expected:
                try:
                    now[learner] = engine.mastery(learner)
                except Exception:  # the learner does not exist yet
                    return None
            return now if all(now[l][1] >= n for l, n in expected.items()) else None

        after = wait_until("the forwarded statements in the engine", all_forwarded)
        summary = {
            "ralph_statements": len(statements),
            "learners": {
                learner: {"expected_attempts": expected[learner], "attempts": a, "p_mastered": p}
                for learner, (p, a) in after.items()
            },
        }
        # Each learner was unknown before: its attempts went from 0 to n.
        ok = all(after[l][1] == n and after[l][0] > 0 for l, n in expected.items())
        print(json.dumps(summary))
        if not ok:
            raise SystemExit("some learner's mastery did not move as expected")
    finally:
        if ralph:
            stop(ralph)
        if engine:
            engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
