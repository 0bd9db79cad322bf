"""The openai backend against real HTTP servers on loopback.

End to end: ``transformers serve`` serves the tiny model (real weights, real chat template,
real streaming) and a suite is evaluated through it. Retries and error messages: a small
scripted server answers 429s, 500s or a stream without ``usage``, so each path is hit
exactly and quickly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from prefline.cli import app
from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals import backends
from prefline.evals.backends import OpenAIBackend
from prefline.evals.run import export_run, run_eval
from prefline.evals.suite import load_suite
from prefline.hashing import content_hash
from prefline.ledger import MIGRATIONS, Ledger

DECODE = DecodingConfig(max_new_tokens=6, batch_size=4)
SECRET = "sk-prefline-test-9f1c2e7d4b"  # must never reach the ledger, an export or an error
SERVER_START_S = 90  # loading torch + transformers + the model on 2 cores takes ~15 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- transformers serve ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """``transformers serve`` pinned to the tiny model on 127.0.0.1; yields (base_url, served model name)."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        message = "transformers serve needs the serving extra: pip install -e '.[test]'"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(tiny_model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer /health within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", str(tiny_model_dir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def spy(monkeypatch):
    """Counts how many conversations the openai backend is asked to generate."""
    calls: list[int] = []
    real = OpenAIBackend.generate

    def counting(self, conversations, on_batch=None):
        calls.append(len(conversations))
        return real(self, conversations, on_batch)

    monkeypatch.setattr(OpenAIBackend, "generate", counting)
    return calls


def test_eval_through_transformers_serve(ledger, served, spy, monkeypatch, prefline_home, tiny_model_dir):
    base_url, name = served
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    suite = load_suite("smoke")
    options = {"base_url": base_url, "concurrency": 4}
    run_id = run_eval(suite, ledger, model_spec=name, decoding=DECODE, backend="openai", backend_options=options, show_progress=False)

    run = ledger.get_run(run_id)
    assert run["status"] == "done" and run["backend"] == "openai" and run["model"] == name
    assert run["model_hash"] == content_hash({"backend": "openai", "model": name, "base_url": base_url})
    rows = ledger.generations(run_id)
    assert len(rows) == len(suite.items) == 32
    for row in rows:
        assert isinstance(row["output"], str)
        assert row["input_tokens"] > 10  # the chat template alone is longer than that
        assert 0 <= row["output_tokens"] <= DECODE.max_new_tokens
        assert row["finish_reason"] in ("stop", "length")
        if row["output_tokens"]:
            assert row["ttft_s"] is not None and 0 < row["ttft_s"] <= row["latency_s"]
    assert sum(bool(r["output"]) for r in rows) > 16  # random weights still say something to most prompts
    assert {s["metric"] for s in ledger.scores(run_id)} >= {"length_tokens", "refusal"}

    # the server runs the same weights and template greedily: the same text as in-process generation
    local = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    assert [g["output"] for g in ledger.generations(local)] == [g["output"] for g in rows]
    assert [g["input_tokens"] for g in ledger.generations(local)] == [g["input_tokens"] for g in rows]

    # an unchanged re-run is served from the cache: no request is sent
    again = run_eval(suite, ledger, model_spec=name, decoding=DECODE, backend="openai", backend_options=options, show_progress=False)
    assert spy == [32]
    assert [g["output"] for g in ledger.generations(again)] == [g["output"] for g in rows]
    assert [g["ttft_s"] for g in ledger.generations(again)] == [g["ttft_s"] for g in rows]

    # the key was sent, but is nowhere in what prefline keeps
    export = json.dumps(export_run(run_id, ledger), default=str)
    assert "ttft_s" in export and SECRET not in export
    ledger.engine.dispose()
    for file in Path(prefline_home).rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_cli_eval_through_transformers_serve(served):
    base_url, name = served
    result = CliRunner().invoke(app, ["eval", "--backend", "openai", "--base-url", base_url, "--model", name,
                                      "--max-new-tokens", "4", "--concurrency", "2", "--timeout", "30", "--json"])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output[result.output.index("{"):])
    assert run["backend"] == "openai" and run["status"] == "done"


def test_llm_judge_through_transformers_serve(ledger, served, monkeypatch, prefline_home, tiny_model_dir):
    """The win rate's LLM judge on a real OpenAI-compatible server: both orders, stored, no key kept."""
    base_url, name = served
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    suite = load_suite("smoke")
    base = run_eval(suite, ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    cand = run_eval(suite, ledger, model_spec=str(tiny_model_dir), show_progress=False,
                    decoding=DecodingConfig(max_new_tokens=12, batch_size=16))
    result = CliRunner().invoke(app, ["preference", "winrate", str(base), str(cand), "--judge", "llm", "--backend", "openai",
                                      "--base-url", base_url, "--model", name, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output[result.output.index("{"):])
    assert payload["judge"]["kind"] == "llm" and payload["judge"]["model"] == f"openai:{name}"
    overall = payload["slices"]["overall"]
    assert overall["n"] == 32 and 0.0 <= overall["flip_rate"] <= 1.0
    assert 0.0 <= overall["raw"]["estimate"] <= 1.0
    stored = ledger.preference_evals()[-1]
    assert stored["kind"] == "win_rate" and stored["judge"]["prompt_version"] == payload["judge"]["prompt_version"]
    ledger.engine.dispose()
    for file in Path(prefline_home).rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_wrong_port_is_one_clear_error_after_bounded_retries(ledger):
    url = f"http://127.0.0.1:{free_port()}/v1"
    began = time.monotonic()
    with pytest.raises(PreflineError) as info:
        run_eval(load_suite("smoke"), ledger, model_spec="some-model", decoding=DECODE, backend="openai", show_progress=False,
                 backend_options={"base_url": url, "max_retries": 2, "backoff_s": 0.05})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{url}/chat/completions: no answer (ConnectError")
    assert message.endswith("gave up after 3 attempt(s)")
    assert time.monotonic() - began < 10


def test_cli_rejects_bad_backend_settings():
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--backend", "openai", "--model", "m"])
    assert result.exit_code == 2 and "needs --base-url" in result.output
    result = runner.invoke(app, ["eval", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2 and "needs --model" in result.output
    result = runner.invoke(app, ["eval", "--backend", "hf", "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2 and "backend 'hf' takes no option base_url" in result.output
    result = runner.invoke(app, ["eval", "--backend", "nope"])
    assert result.exit_code == 2 and "unknown backend 'nope'; known: hf, openai, vllm" in result.output
    result = runner.invoke(app, ["eval", "--backend", "openai", "--base-url", "http://u:pw@127.0.0.1:9/v1", "--model", "m",
                                 "--api-key-env", "PREFLINE_NO_SUCH_KEY"])
    assert result.exit_code == 2 and "PREFLINE_NO_SUCH_KEY" in result.output and "pw" not in result.output


def test_identity_leaves_credentials_out():
    ref = OpenAIBackend.model_ref("m", None, base_url="https://user:secret@api.example.com/v1/?key=secret2")
    assert ref.path == "https://api.example.com/v1"
    assert ref.hash == content_hash({"backend": "openai", "model": "m", "base_url": "https://api.example.com/v1"})
    with pytest.raises(PreflineError, match="loads no adapter"):
        OpenAIBackend.model_ref("m", {"id": 1}, base_url="http://127.0.0.1:9/v1")


# --- a scripted server for retries and odd answers ----------------------------------------


class Script:
    """What the scripted server answers, request by request, and what it received."""

    def __init__(self, answers: list[str], usage: bool = True):
        self.answers = answers  # "429", "500", "404" or "ok"; the last one repeats
        self.usage = usage
        self.requests: list[dict] = []
        self.lock = threading.Lock()


def _handler(script: Script):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                answer = script.answers[min(len(script.requests), len(script.answers)) - 1]
            if answer != "ok":
                # a careless server echoes the credentials it was sent
                payload = json.dumps({"error": {"message": f"no ({self.headers.get('Authorization')})", "type": "x"}}).encode()
                self.send_response(int(answer))
                self.send_header("Content-Type", "application/json")
                if answer == "429":
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
                      {"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
                      {"choices": [{"index": 0, "delta": {"content": " there"}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
            if script.usage:  # vLLM's layout: usage in a last chunk with no choices
                chunks.append({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"data: [DONE]\n\n")

    return Handler


@pytest.fixture
def scripted():
    servers = []

    def start(answers: list[str], usage: bool = True) -> tuple[str, Script]:
        script = Script(answers, usage)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1", script

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _backend(base_url: str, **options) -> OpenAIBackend:
    ref = OpenAIBackend.model_ref("served-model", None, base_url=base_url)
    return OpenAIBackend(ref, DecodingConfig(max_new_tokens=5, seed=7), base_url=base_url, backoff_s=0.01, **options)


def test_429_twice_then_success(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    url, script = scripted(["429", "429", "ok"])
    finished: list[int] = []
    [gen] = _backend(url, max_retries=3).generate([[{"role": "user", "content": "hi"}]], on_batch=lambda p, g: finished.extend(p))
    assert len(script.requests) == 3 and finished == [0]
    assert (gen.output, gen.input_tokens, gen.output_tokens, gen.finish_reason) == ("Hello there", 12, 2, "stop")
    assert 0 < gen.ttft_s <= gen.latency_s
    request = script.requests[-1]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {SECRET}"
    assert request["body"] == {"model": "served-model", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                               "stream_options": {"include_usage": True}, "max_tokens": 5, "temperature": 0.0,
                               "top_p": 1.0, "seed": 7}


def test_500s_give_up_with_the_status_and_no_key(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    url, script = scripted(["500"])
    with pytest.raises(PreflineError) as info:
        _backend(url, max_retries=2).generate([[{"role": "user", "content": "hi"}]])
    message = str(info.value)
    assert message.startswith(f"{url}/chat/completions: HTTP 500: no (Bearer ***)") and "gave up after 3 attempt(s)" in message
    assert SECRET not in message and len(script.requests) == 3


def test_client_errors_are_not_retried(scripted):
    url, script = scripted(["404"])
    with pytest.raises(PreflineError, match=r"HTTP 404: .*is --base-url the API root"):
        _backend(url, max_retries=3).generate([[{"role": "user", "content": "hi"}]])
    assert len(script.requests) == 1


def test_missing_usage_leaves_token_counts_empty(scripted, ledger):
    url, _ = scripted(["ok"], usage=False)
    [gen] = _backend(url).generate([[{"role": "user", "content": "hi"}]])
    assert gen.output == "Hello there" and gen.input_tokens is None and gen.output_tokens is None
    ledger.cache_generations([{"key": "k" * 64, **gen.__dict__}])  # the ledger stores them as NULL
    assert ledger.cached_generations(["k" * 64])["k" * 64]["output_tokens"] is None


def test_concurrent_requests_each_reported_once(scripted):
    url, script = scripted(["ok"])
    seen: list[int] = []
    gens = _backend(url, concurrency=4).generate([[{"role": "user", "content": f"q{i}"}] for i in range(10)],
                                                 on_batch=lambda p, g: seen.extend(p))
    assert sorted(seen) == list(range(10)) and len(gens) == 10 and all(g.output == "Hello there" for g in gens)
    assert sorted(r["body"]["messages"][0]["content"] for r in script.requests) == sorted(f"q{i}" for i in range(10))


# --- the ledger migration behind ttft_s ---------------------------------------------------


def test_upgrade_keeps_generations_and_allows_missing_counts(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a ledger as the previous release left it
        for name, step in MIGRATIONS[:2]:
            step(conn)
        conn.execute(sa.text("CREATE TABLE schema_migrations (name VARCHAR(100) PRIMARY KEY, applied_at DATETIME NOT NULL)"))
        for name, _ in MIGRATIONS[:2]:
            conn.execute(sa.text("INSERT INTO schema_migrations VALUES (:n, CURRENT_TIMESTAMP)"), {"n": name})
        conn.execute(sa.text("INSERT INTO generation_cache (key, output, input_tokens, output_tokens, latency_s, finish_reason, created_at) "
                             "VALUES ('a', 'kept', 3, 2, 0.5, 'stop', CURRENT_TIMESTAMP)"))
    engine.dispose()
    ledger = Ledger(url)
    row = ledger.cached_generations(["a"])["a"]
    assert (row["output"], row["input_tokens"], row["ttft_s"]) == ("kept", 3, None)
    columns = {c["name"]: c for c in sa.inspect(ledger.engine).get_columns("generations")}
    assert columns["output_tokens"]["nullable"] and columns["ttft_s"]["nullable"] and not columns["output"]["nullable"]


def test_hf_backend_measures_time_to_first_token(ledger, tiny_model_dir):
    run_id = run_eval(load_suite("smoke"), ledger, model_spec=str(tiny_model_dir), decoding=DECODE, show_progress=False)
    rows = ledger.generations(run_id)
    assert all(0 < r["ttft_s"] <= r["latency_s"] for r in rows)
    assert backends.BACKENDS["hf"] is backends.HFBackend
