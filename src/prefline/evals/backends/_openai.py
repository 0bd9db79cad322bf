"""``openai``: any OpenAI-compatible chat-completions server (vLLM, TGI, SGLang, llama.cpp, hosted APIs).

Each conversation is one streamed ``POST {base_url}/chat/completions``; up to ``concurrency``
are in flight at once, and each result is handed to ``on_batch`` as soon as it arrives, so
an interrupted run resumes from what had finished. Streaming gives the time to first token:
from sending the request until the first chunk that carries text. Token counts come from
the server's ``usage`` (asked for with ``stream_options.include_usage``); a server that
sends none leaves them None rather than guessing with a tokenizer prefline may not have.

The model is the served model name; its identity (the generation-cache key) is a hash of
the backend, that name and the base URL without credentials. The API key is read from an
environment variable at start-up and sent only as a header: it is never stored, logged
or put into an error message.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefline.config import DecodingConfig
from prefline.errors import PreflineError
from prefline.evals.backends._base import Generation, backend
from prefline.hashing import content_hash
from prefline.models import ModelRef

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
RETRY_AFTER_CAP_S = 60.0  # a server asking for a longer pause is not waited for beyond this


def public_url(url: str) -> str:
    """The URL without user, password, query or fragment: what may be stored, hashed and shown."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # the URL itself is not echoed: it may carry credentials
        raise PreflineError(f"base URL must look like http://host:port/v1 (got scheme {parts.scheme or 'none'!r}, host {parts.hostname or 'none'!r})")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _Retryable(Exception):
    """A failure worth another attempt: 429, 5xx, a broken connection, a stream cut short."""

    def __init__(self, what: str, retry_after: float | None = None):
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


class _Cancelled(Exception):
    """Another request failed or the run was interrupted: stop retrying."""


@backend("openai")
class OpenAIBackend:
    """Streamed chat completions from an OpenAI-compatible HTTP server.

    Options (keyword-only, also on the command line):

    - ``base_url``: the server's OpenAI API root, usually ending in ``/v1``
      (``http://127.0.0.1:8000/v1``); requests go to ``{base_url}/chat/completions``. Required.
    - ``api_key_env`` (default ``OPENAI_API_KEY``): the environment variable holding the API key,
      sent as ``Authorization: Bearer``. Unset default variable: no key is sent (local servers);
      an unset variable that was named explicitly is an error.
    - ``concurrency`` (default 8): requests in flight at once.
    - ``timeout_s`` (default 120 s): longest silence on a connection, and longest time one
      request may take from sending to its last token.
    - ``max_retries`` (default 4): further attempts after a 429, a 5xx, a connection error or
      a timeout, waiting ``backoff_s`` (default 1 s) doubled each time, or the server's
      ``Retry-After`` (capped at 60 s). Other HTTP errors fail at once.
    """

    name = "openai"

    @classmethod
    def model_ref(cls, model_spec: str | None, adapter_row: dict[str, Any] | None, **options: Any) -> ModelRef:
        """The served model's identity; checks every option first, so a bad one fails before the run is recorded."""
        if adapter_row is not None:
            raise PreflineError("the openai backend loads no adapter: serve the LoRA on the server "
                                "(vLLM: --lora-modules NAME=PATH) and pass its served name as --model")
        _check_options(**options)
        url = public_url(options["base_url"])
        if not model_spec:
            raise PreflineError(f"the openai backend needs --model: the model name served at {url} (listed by GET {url}/models)")
        return ModelRef(spec=model_spec, path=url, hash=content_hash({"backend": "openai", "model": model_spec, "base_url": url}))

    def __init__(self, model_ref: ModelRef, decoding: DecodingConfig, adapter_path: Path | None = None, *,
                 base_url: str | None = None, api_key_env: str = DEFAULT_API_KEY_ENV, concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 1.0):
        import httpx2

        if adapter_path is not None:
            raise PreflineError("the openai backend loads no adapter; pass the adapter's served name as --model")
        _check_options(base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, timeout_s=timeout_s,
                 max_retries=max_retries, backoff_s=backoff_s)
        self._httpx = httpx2
        self.model = model_ref.spec
        self.decoding = decoding
        parts = urlsplit(base_url.strip())  # a query (e.g. an api-version) stays on the request URL
        self.url = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/chat/completions"))
        self.shown_url = public_url(base_url) + "/chat/completions"
        self.concurrency, self.timeout_s, self.max_retries, self.backoff_s = concurrency, timeout_s, max_retries, backoff_s
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env) or None

    def request_body(self, conversation: list[dict[str, str]]) -> dict[str, Any]:
        dec = self.decoding
        return {
            "model": self.model, "messages": conversation, "stream": True, "stream_options": {"include_usage": True},
            "max_tokens": dec.max_new_tokens, "temperature": dec.temperature, "top_p": dec.top_p, "seed": dec.seed,
        }

    def generate(self, conversations, on_batch=None):
        httpx = self._httpx
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        client = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout_s),
                              limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency))
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="prefline-openai")
        results: list[Generation | None] = [None] * len(conversations)
        try:
            futures = {pool.submit(self._complete, client, stop, conv): i for i, conv in enumerate(conversations)}
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()  # the first failure ends the run; what finished is persisted
                if on_batch is not None:
                    on_batch([index], [results[index]])
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            client.close()
        return results  # type: ignore[return-value]

    # -- one request, with retries
    def _complete(self, client, stop: threading.Event, conversation: list[dict[str, str]]) -> Generation:
        body = self.request_body(conversation)
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                raise _Cancelled()
            try:
                return self._stream_once(client, body)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise PreflineError(self._redact(f"{self.shown_url}: {exc.what}; gave up after {attempt + 1} attempt(s)")) from None
                delay = exc.retry_after if exc.retry_after is not None else self.backoff_s * 2 ** attempt
                if stop.wait(delay):
                    raise _Cancelled() from None
        raise AssertionError("unreachable")

    def _stream_once(self, client, body: dict[str, Any]) -> Generation:
        httpx = self._httpx
        began = time.perf_counter()
        try:
            with client.stream("POST", self.url, json=body) as response:
                if response.status_code != 200:
                    response.read()
                    self._fail(response)
                return self._read_stream(response, began)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
            first = (str(exc).splitlines() or [""])[0]
            raise _Retryable(f"no answer ({type(exc).__name__}: {first})" if first else f"no answer ({type(exc).__name__})") from None

    def _fail(self, response) -> None:
        status = response.status_code
        what = f"HTTP {status}: {_detail(response)}"
        if status == 429 or status >= 500:
            raise _Retryable(what, retry_after=_retry_after(response))
        hint = {401: f"; is the key in ${self.api_key_env} right?", 403: f"; is the key in ${self.api_key_env} right?",
                404: "; is --base-url the API root (it usually ends in /v1) and --model a served model name?"}.get(status, "")
        raise PreflineError(self._redact(f"{self.shown_url}: {what}{hint}"))

    def _read_stream(self, response, began: float) -> Generation:
        parts: list[str] = []
        ttft = finish = usage = None
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (": ping"), "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise PreflineError(self._redact(f"{self.shown_url}: the stream sent a chunk that is not JSON: {data[:120]!r}")) from None
            if chunk.get("error"):
                raise _Retryable(f"error in the stream: {_message(chunk['error'])}")
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if ttft is None and (text or delta.get("reasoning_content")):
                    ttft = time.perf_counter() - began
                if text:
                    parts.append(text)
                finish = choice.get("finish_reason") or finish
            usage = chunk.get("usage") or usage
            if time.perf_counter() - began > self.timeout_s:
                raise _Retryable(f"the answer took longer than {self.timeout_s:g} s")
        latency = time.perf_counter() - began
        if finish is None:
            raise _Retryable("the stream ended without a finish_reason")
        return Generation(
            output="".join(parts).strip(),
            input_tokens=(usage or {}).get("prompt_tokens"),
            output_tokens=(usage or {}).get("completion_tokens"),
            latency_s=round(latency, 4),
            finish_reason=str(finish)[:20],
            ttft_s=None if ttft is None else round(ttft, 4),
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text


def _check_options(base_url: str | None = None, api_key_env: str = DEFAULT_API_KEY_ENV, concurrency: int = 8,
                   timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 1.0) -> None:
    if not base_url:
        raise PreflineError("the openai backend needs --base-url, the server's API root (e.g. http://127.0.0.1:8000/v1)")
    public_url(base_url)
    if concurrency < 1 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
        raise PreflineError(f"openai backend: concurrency must be >= 1 (got {concurrency}), timeout > 0 (got {timeout_s}), "
                            f"retries >= 0 (got {max_retries}), backoff >= 0 (got {backoff_s})")
    if api_key_env != DEFAULT_API_KEY_ENV and not os.environ.get(api_key_env):
        raise PreflineError(f"the API key variable {api_key_env} (from --api-key-env) is not set in the environment")


def _message(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or json.dumps(error)
    return (str(error).splitlines() or [""])[0][:200]


def _detail(response) -> str:
    """The server's own reason, in one short line."""
    try:
        payload = response.json()
    except ValueError:
        return _message(response.text) or response.reason_phrase
    if isinstance(payload, dict):
        return _message(payload.get("error") or payload.get("detail") or payload.get("message") or payload)
    return _message(payload)


def _retry_after(response) -> float | None:
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), RETRY_AFTER_CAP_S)
    except ValueError:
        return None  # absent, or an HTTP date: use the backoff
