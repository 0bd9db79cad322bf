"""Generation backends: one interface, ``generate(conversations, on_batch) -> list[Generation]``.

Registered by name in ``BACKENDS``:

- ``hf``: transformers in-process (CPU or GPU), with an optional PEFT adapter;
- ``openai``: any OpenAI-compatible chat-completions server, streamed, with bounded
  concurrency and retries;
- ``vllm``: vLLM in-process on a GPU, the adapter applied as a LoRA per request.

A backend first names the model it answers with (``model_ref``: spec and content hash,
which key the generation cache), then, only if something is left to generate, is built
and asked for generations, reporting them through ``on_batch`` as they finish.
"""

from prefline.evals.backends._base import BACKENDS, Backend, Generation, OnBatch, backend, check_options, get_backend
from prefline.evals.backends._hf import HFBackend
from prefline.evals.backends._openai import OpenAIBackend
from prefline.evals.backends._vllm import VLLMBackend

__all__ = ["BACKENDS", "Backend", "Generation", "HFBackend", "OnBatch", "OpenAIBackend", "VLLMBackend", "backend",
           "check_options", "get_backend"]
