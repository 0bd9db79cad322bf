"""Keeping a training run's resident memory small and flat.

Two things, both on by default:

- ``cpu_logprob_tiles``: TRL's fused LM head on CPU projects up to 4,096 tokens per tile and folds each
  tile into log-probs with float32 torch ops, whose temporaries were most of a step's peak. Fewer
  tokens per tile give the same log-probs with a fraction of that scratch memory.
- ``ReleaseMemory``: after the reference log-prob pass and after every optimizer step, glibc's
  ``malloc_trim(0)`` hands every free page of every heap arena back to the operating system. glibc
  serves large blocks with ``mmap`` and returns them on free, but its mmap threshold is dynamic (after
  such a block is freed it rises to that block's size, up to 32 MiB), and freed heap memory goes back
  only from the top of a heap, so blocks freed between live ones stay resident. It is glibc's: with
  another C library, or another allocator preloaded (jemalloc, tcmalloc), it is skipped or costs nothing.

Measured effects: docs/benchmarks.md, training memory.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from transformers import TrainerCallback


@cache
def _glibc() -> ctypes.CDLL | None:
    """The process's glibc, or None where the C library is another one (musl, macOS, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the operating system; whether glibc did so (False: not glibc, or nothing to free)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


class ReleaseMemory(TrainerCallback):
    """Trims the heap when training begins (after TRL's reference log-prob pass, which runs while the
    trainer is built) and after every optimizer step. ``trims`` counts the calls that ran."""

    def __init__(self) -> None:
        self.trims = 0
        self.available = _glibc() is not None

    def _trim(self) -> None:
        if self.available:
            release_freed_memory()
            self.trims += 1

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        self._trim()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self._trim()


# Tokens projected through the LM head at once when training on CPU. TRL 1.16's fused LM head
# (trl.kernels.chunked_logprob) multiplies up to 4,096 tokens by 32,768 vocabulary rows per tile, and
# without Triton folds each tile into log-probs with whole-tile torch ops in float32: several temporaries
# of 4,096 x 32,768 x 4 bytes (512 MB each). Each token's log-prob depends only on its own row, so fewer
# tokens per tile give the same numbers with a fraction of the scratch memory (docs/benchmarks.md,
# training memory: 512 tokens took DPO on multi-turn transcripts from 3.2 to 2.3 GB peak).
CPU_LOGPROB_TOKENS = 512


@contextmanager
def cpu_logprob_tiles(on_cpu: bool, tokens: int | None = None) -> Iterator[None]:
    """While training on CPU, let TRL's fused LM head project at most ``tokens`` (default
    ``CPU_LOGPROB_TOKENS``) tokens per tile; its setting is restored afterwards. On GPUs the tiles
    are folded in place by Triton kernels, and nothing changes."""
    from trl.kernels import chunked_logprob

    if not on_cpu:
        yield
        return
    before = chunked_logprob.TOKEN_CHUNK_SIZE
    chunked_logprob.TOKEN_CHUNK_SIZE = min(before, tokens or CPU_LOGPROB_TOKENS)
    try:
        yield
    finally:
        chunked_logprob.TOKEN_CHUNK_SIZE = before
