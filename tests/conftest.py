"""Shared fixtures: a temporary prefline home and ledger, a tiny model with the real tokenizer,
and a real PostgreSQL server on loopback for the ledger tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def prefline_home(tmp_path, monkeypatch):
    """Every test gets its own home and SQLite ledger; nothing touches ~/.prefline."""
    home = tmp_path / "home"
    monkeypatch.setenv("PREFLINE_HOME", str(home))
    monkeypatch.delenv("PREFLINE_DB_URL", raising=False)
    monkeypatch.delenv("PREFLINE_EMBED_PRECISION", raising=False)  # the embedding precision is chosen per CPU
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return home


@pytest.fixture
def ledger(prefline_home):
    from prefline.ledger import Ledger

    return Ledger()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights and SmolLM2's real tokenizer and chat template.

    Small enough that DPO steps and generation take well under a second, real enough
    that every code path (chat template, LoRA, PEFT loading) is the one users run.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prefline.models import embedded_gguf_path

    folder = tmp_path_factory.mktemp("tiny-model")
    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        # wide random weights, so outputs vary with the prompt instead of repeating one token
        initializer_range=0.5,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows may be dicts (serialized) or raw strings (written as-is, for malformed lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def pair(i: int, **extra) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"Question {i}: how do I reverse a list in Python?"}],
        "chosen": [{"role": "assistant", "content": f"Use reversed(xs) or xs[::-1] ({i})."}],
        "rejected": [{"role": "assistant", "content": f"I cannot help with that request ({i})."}],
        "slices": {"intent": "coding" if i % 2 else "factual"},
        **extra,
    }


# --- PostgreSQL ------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return shutil.which(name)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1, started from the Debian package's binaries.

    CI installs the package (.ci/run), so there a missing server is a failure, not a skip.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are missing; .ci/run should install the postgresql package")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    root = tmp_path_factory.mktemp("pg")
    datadir = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        parent = root.parent
        while parent != parent.parent:  # the server user must be able to reach its folder
            os.chmod(parent, os.stat(parent).st_mode | 0o005)
            parent = parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", str(datadir), "-U", "prefline", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(datadir), "-l", str(root / "log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}", "start"],
                   check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg2://prefline@127.0.0.1:{port}/postgres"
        import sqlalchemy as sa

        for _ in range(50):
            try:
                sa.create_engine(url).connect().close()
                break
            except sa.exc.OperationalError:
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(datadir), "-m", "fast", "stop"], capture_output=True)


@pytest.fixture
def pg_url(postgres_url):
    """A fresh database on the session's PostgreSQL server."""
    import uuid

    import sqlalchemy as sa

    name = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/" + name
