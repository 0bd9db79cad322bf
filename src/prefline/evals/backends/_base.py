"""What every backend shares: the ``Generation`` record, the interface, and the registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prefline.errors import PreflineError
from prefline.models import ModelRef, resolve_model
from prefline.registry import Registry


@dataclass
class Generation:
    output: str
    input_tokens: int | None  # None only when an HTTP server reports no usage (see the openai backend)
    output_tokens: int | None
    latency_s: float  # wall time of the batch (hf, vllm) or of the request (openai) the item was generated in
    finish_reason: str  # "stop" (end of sequence) or "length" (hit max_new_tokens); a server may report others
    ttft_s: float | None = None  # time to first token, same clock as latency_s; None where it was not measured


OnBatch = Callable[[list[int], list[Generation]], None]


class Backend(Protocol):
    """A generation backend, registered by name with ``@backend(name)``.

    ``model_ref`` names the model the backend will answer with (its spec and a content hash:
    the hash keys the generation cache), before anything is loaded, so a fully cached run
    never starts a backend. The constructor takes that ref, the decoding settings, a local
    adapter folder or None, and the backend's own options as keyword-only arguments.
    """

    name: str

    @classmethod
    def model_ref(cls, model_spec: str | None, adapter_row: dict[str, Any] | None, **options: Any) -> ModelRef: ...

    def generate(self, conversations: list[list[dict[str, str]]], on_batch: OnBatch | None = None) -> list[Generation]:
        """Generate a reply to each conversation; as items finish, call ``on_batch(indices, generations)``
        with the positions (in ``conversations``) they hold, so callers can persist as they go."""
        ...


BACKENDS: Registry[type] = Registry("backend")


def backend(name: str):  # noqa: ANN201
    """Register a backend class under ``name`` (``--backend NAME``)."""
    return BACKENDS.decorator(name)


def get_backend(name: str) -> type:
    return BACKENDS.lookup(name)


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options a backend's constructor takes (its keyword-only parameters); anything else is an error."""
    params = inspect.signature(get_backend(name).__init__).parameters
    known = [p for p, spec in params.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise PreflineError(f"backend {name!r} takes no option {', '.join(unknown)} (it takes: {', '.join(known) or 'none'})")
    return dict(options)


def local_model_ref(model_spec: str | None, adapter_row: dict[str, Any] | None) -> ModelRef:
    """For in-process backends: the given model, else the adapter's base model, else the embedded one."""
    if adapter_row is not None and model_spec is None:
        model_spec = adapter_row["base_model"]
    return resolve_model(model_spec)

