"""Handing freed heap memory back to the operating system during training (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import os

import pytest

from conftest import pair, write_jsonl
from prefline.config import TrainConfig
from prefline.data.ingest import ingest
from prefline.train import memory
from prefline.train.run import train

FAST = TrainConfig(batch_size=2, learning_rate=1e-2, max_length=64, bf16=False, gradient_checkpointing=False, max_steps=3)
GLIBC = memory._glibc() is not None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trimming_returns_freed_holes_in_the_heap():
    """Blocks freed between live ones stay resident (free() returns only the top of the heap); a trim returns them."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block, n = 64 * 1024, 3200  # 200 MiB in blocks under glibc's mmap threshold: they come from the heap
    blocks = [libc.malloc(block) for _ in range(n)]
    try:
        for b in blocks:
            ctypes.memset(b, 1, block)
        for b in blocks[::2]:  # every other one: each freed block lies between two live ones
            libc.free(b)
        held = rss_bytes()
        assert memory.release_freed_memory() is True
        assert held - rss_bytes() > 0.8 * block * n / 2
    finally:
        for b in blocks[1::2]:
            libc.free(b)


def _dataset(ledger, tmp_path):
    ingest(write_jsonl(tmp_path / "p.jsonl", [pair(i) for i in range(6)]), "p", ledger)


def test_the_heap_is_trimmed_after_the_reference_pass_and_every_step(ledger, tiny_model_dir, tmp_path, monkeypatch):
    _dataset(ledger, tmp_path)
    calls = []
    real = memory.release_freed_memory
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1) or real())
    adapter = train("dpo", "p", "a", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert adapter["config"]["release_memory"] is True
    assert len(calls) == (1 + 3 if GLIBC else 0)  # once when training begins, then after each of the 3 steps
    calls.clear()
    off = train("dpo", "p", "b", FAST.model_copy(update={"release_memory": False}), ledger,
                model_spec=str(tiny_model_dir), show_progress=False)
    assert calls == [] and off["config"]["release_memory"] is False
    losses = [[s["metrics"]["loss"] for s in ledger.train_steps(a["id"])] for a in (adapter, off)]
    assert losses[0] == losses[1]  # trimming moves no number


def test_without_glibc_nothing_is_trimmed_and_training_runs(ledger, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))  # as on musl or macOS
    memory._glibc.cache_clear()
    try:
        assert memory._glibc() is None and memory.release_freed_memory() is False
        callback = memory.ReleaseMemory()
        _dataset(ledger, tmp_path)
        calls = []
        monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1))
        adapter = train("dpo", "p", "a", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
        assert adapter["status"] == "done" and calls == [] and callback.trims == 0
    finally:
        memory._glibc.cache_clear()


def test_smaller_logprob_tiles_give_the_same_numbers():
    """TRL's fused LM head, fed fewer tokens per tile: each token's log-prob depends only on its own row, so
    the log-probs are equal bit for bit; the gradient's matrix products change shape, so it may differ in
    the last bits."""
    import torch
    from trl.kernels import ChunkedLogProbFunction, chunked_logprob

    torch.manual_seed(0)
    hidden, weight = torch.randn(50, 16), torch.randn(300, 16)
    targets = torch.randint(0, 300, (50,))

    def run():
        h = hidden.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = ChunkedLogProbFunction.apply(h, weight, None, targets, 1.0, 128, None, 1.0, ("log_probs", "entropy"))
        (out[0].sum() + out[1].sum()).backward()
        return out[0].detach(), out[1].detach(), h.grad

    import inspect

    # the constant prefline sets is the one TRL's forward and backward step through
    assert inspect.getsource(ChunkedLogProbFunction).count("range(0, N, TOKEN_CHUNK_SIZE)") == 2
    whole = run()
    assert chunked_logprob.TOKEN_CHUNK_SIZE >= 50  # TRL's default: every token in one tile
    with memory.cpu_logprob_tiles(True, tokens=7):
        assert chunked_logprob.TOKEN_CHUNK_SIZE == 7
        tiled = run()
    assert chunked_logprob.TOKEN_CHUNK_SIZE >= 50  # restored
    assert torch.equal(whole[0], tiled[0]) and torch.equal(whole[1], tiled[1])
    torch.testing.assert_close(whole[2], tiled[2], rtol=1e-5, atol=1e-6)
    with memory.cpu_logprob_tiles(False, tokens=7):
        assert chunked_logprob.TOKEN_CHUNK_SIZE >= 50  # not on CPU: TRL's tiles


def test_training_on_cpu_projects_the_configured_tokens_per_tile(ledger, tiny_model_dir, tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils
    from trl.kernels import chunked_logprob

    real, seen = trl_utils._ChunkedLogProbFunction, []

    class Spy:
        @staticmethod
        def apply(*args):
            seen.append(chunked_logprob.TOKEN_CHUNK_SIZE)
            return real.apply(*args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)  # the name TRL's fused LM head calls
    monkeypatch.setattr(memory, "CPU_LOGPROB_TOKENS", 5)
    before = chunked_logprob.TOKEN_CHUNK_SIZE
    _dataset(ledger, tmp_path)
    train("dpo", "p", "a", FAST, ledger, model_spec=str(tiny_model_dir), show_progress=False)
    assert len(seen) >= 3 + 1  # the reference pass, then a policy forward per step
    assert set(seen) == {5}
    assert chunked_logprob.TOKEN_CHUNK_SIZE == before
