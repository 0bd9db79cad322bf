"""Configuration the user writes: pydantic models, each field documented once, here.

YAML files are validated against these models; an error names the file and the field
(``train.yaml: beta: must be greater than 0``) and nothing is loaded before it passes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefline.errors import PreflineError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """The base of every model a user's file is read into: an unknown key is an error (a typo is never
    silently ignored), and no number may be infinite or NaN (1e400 in YAML is infinity)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TrainConfig(StrictModel):
    """Hyper-parameters of a preference-training run (LoRA on the base model).

    Defaults are sized for a ~100M-parameter model on CPU; bf16 autocast follows TRL's default,
    which measured faster and leaner here than fp32; gradient checkpointing depends on the model's size.
    """

    beta: float | None = Field(None, gt=0, description=(
        "Scale of the preference loss. For dpo, ipo, hinge, robust, ld-dpo and kto: how far the policy may move from "
        "the reference (higher = closer); for simpo: the reward scale; for orpo: the weight of the odds-ratio term. "
        "Unset means the method's default: 2.0 for simpo (its rewards are per-token averages, so it needs a larger "
        "scale), 0.1 for the others. sft and reward have no beta."))
    label_smoothing: float = Field(0.1, gt=0, lt=0.5, description=(
        "robust only: the assumed probability that a preference label is flipped, in (0, 0.5). "
        "0.1 is the typical value from the Robust DPO paper, as TRL documents it."))
    ld_alpha: float = Field(0.5, ge=0, le=1, description=(
        "ld-dpo only: weight of the log-probabilities of the tokens past the shorter response's length, in [0, 1]. "
        "1 is plain DPO; 0 ignores those tokens."))
    rpo_alpha: float = Field(1.0, gt=0, description=(
        "rpo only: weight of the negative log-likelihood of the chosen responses added to the DPO loss."))
    simpo_gamma: float = Field(0.5, ge=0, description=(
        "simpo only: target reward margin gamma, in units of beta-scaled average log-probability per token "
        "(TRL's default; gamma/beta = 0.25 with simpo's default beta of 2.0)."))
    learning_rate: float = Field(5e-4, gt=0, description="Peak learning rate (linear decay). LoRA tolerates rates ~10x full fine-tuning.")
    epochs: float = Field(1.0, gt=0, description="Passes over the dataset (fractions allowed).")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 means use `epochs`.")
    batch_size: int = Field(4, ge=1, description="Rows per device per step: pairs, or for kto labelled responses (two per pair).")
    grad_accum: int = Field(1, ge=1, description="Steps whose gradients are summed before one optimizer update.")
    max_length: int = Field(512, ge=16, description="Tokens kept per prompt + response; longer pairs are truncated.")
    finetune: Literal["lora", "full"] = Field("lora", description=(
        "lora (default): a LoRA adapter on the frozen base; methods with a reference model use the base with the "
        "adapter disabled, so no second copy is held. full: every weight trains and the result is a full model "
        "folder; methods with a reference model then hold a frozen copy of the base (or precompute its log-probs), "
        "and a learning rate about 10x lower than LoRA's is the usual start. Not for `reward`."))
    lora_r: int = Field(8, ge=1, description="LoRA rank; must be at least 1.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scale numerator (effective scale alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: str | list[str] = Field("all-linear", description="Modules that get LoRA: 'all-linear' or a list of names.")
    warmup_ratio: float = Field(0.0, ge=0, le=1, description="Share of steps spent warming up the learning rate.")
    bf16: bool = Field(True, description="bf16 autocast; on CPU it runs faster than fp32 with half the activation memory.")
    gradient_checkpointing: bool | None = Field(None, description=(
        "Recompute activations in the backward pass to save memory, at the cost of time. Unset (default): on for base "
        "models whose weights take 2 GB or more on disk (about 1B parameters in bf16), and for runs whose activations "
        "would take 1.5 GiB or more per step (estimated from batch_size, the longest pair up to max_length, and the "
        "model's layers and hidden size: DPO with batch 4 on multi-turn transcripts at max_length 384 peaked at 4.9 GB "
        "without it, 3.2 GB with it, over 6 steps); off otherwise, where skipping the recomputation measured faster (docs/benchmarks.md)."))
    group_by_length: bool = Field(True, description=(
        "dpo, ipo, hinge, robust, ld-dpo: draw each batch from pairs of similar length (transformers' length-grouped "
        "sampler, still shuffled with the seed), so rows are padded less."))
    precompute_ref_log_probs: bool | None = Field(None, description=(
        "Methods with a reference model (dpo, ipo, hinge, robust, ld-dpo, kto): compute its log-probs once, in a "
        "pass over the dataset before training, instead of in every step. Unset (default): on for dpo, ipo, hinge, "
        "robust and ld-dpo when the run trains on at least as many pairs as the dataset holds (one epoch or more), "
        "where the pass costs no more than the steps save; off otherwise, and for kto."))
    release_memory: bool = Field(True, description=(
        "After the reference log-prob pass and after every optimizer step, hand the free pages of the heap back to "
        "the operating system (glibc's malloc_trim(0); nothing happens with another C library or a preloaded "
        "allocator). It costs one call per step; on DPO with long transcripts it lowered the memory held between "
        "steps by about 80 MB, not the peak (docs/benchmarks.md, training memory)."))
    seed: int = Field(0, description="Seed for data order, LoRA and reward-head initialisation, and dropout.")
    logging_steps: int = Field(1, ge=1, description="Record step metrics in the ledger every N steps.")
    save_steps: int = Field(0, ge=0, description=(
        "Write a checkpoint (adapter, optimizer, scheduler, RNG state) every N optimizer steps under the adapter's "
        "folder, so `prefline train resume NAME` can continue a killed run; 0 (default) writes none, and a resumed run "
        "then starts again from step 0. Checkpoints are deleted when the run finishes."))
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept at once (the newest); older ones are deleted as new ones are written.")
    probe_every: int = Field(0, ge=0, description=(
        "Drift probes: every N optimizer steps (and once before the first), generate greedily with the model being "
        "trained on `probe_items` prompts of `probe_suite` and record the mean response length (tokens) and refusal "
        "rate in the ledger. 0 (default) turns probes off."))
    probe_suite: str | None = Field(None, description="Suite the probes draw from: a shipped suite name or a suite folder. Unset: `probe` if prefline ships it, else `smoke`.")
    probe_items: int = Field(8, ge=1, description="Prompts per probe: the suite's first N items.")
    probe_max_new_tokens: int = Field(64, ge=1, description="Upper bound on tokens per probe response.")
    max_length_increase: float | None = Field(None, gt=0, description=(
        "Drift limit, with probes on: stop training when the probes' mean response length exceeds the step-0 mean by "
        "more than this share (0.3 = 30% longer). Unset: no limit."))
    max_refusal_increase: float | None = Field(None, gt=0, le=1, description=(
        "Drift limit, with probes on: stop training when the probes' refusal rate exceeds the step-0 rate by more than "
        "this (absolute, 0.1 = ten points). Unset: no limit."))

    @model_validator(mode="after")
    def _limits_need_probes(self) -> TrainConfig:
        for limit in ("max_length_increase", "max_refusal_increase"):
            if getattr(self, limit) is not None and self.probe_every == 0:
                raise ValueError(f"{limit} is a drift limit read from the probes, but probe_every is 0 (probes off); set probe_every too")
        return self


class DecodingConfig(StrictModel):
    """How responses are generated during evaluation. Greedy by default, so runs replay exactly."""

    max_new_tokens: int = Field(160, ge=1, description="Upper bound on generated tokens per response.")
    temperature: float = Field(0.0, ge=0, description="0 means greedy decoding; above 0 samples with the seed.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (only when temperature > 0).")
    batch_size: int = Field(16, ge=1, description="Prompts generated together; similar lengths are batched together.")
    seed: int = Field(0, description="Seed for sampling (and for anything random in scoring).")


BOUNDS = ("max_increase", "max_decrease", "max_ratio", "min_ratio", "max_value", "min_value")


class GateRule(StrictModel):
    """One metric's bounds. Each bound set becomes one check per slice, decided from the data:
    **fail** when a one-sided test shows the candidate beyond the bound (significant at the policy's
    ``error_rate`` after the multiplicity correction), **pass** when the worse end of its one-sided
    interval stays inside, **inconclusive** otherwise. The relative bounds (``max_increase`` ...
    ``min_ratio``) are margins against the baseline on the same items; ``max_value``/``min_value``
    are hard limits on the candidate alone."""

    metric: str = Field(description=(
        "A metric name: any metric an eval run scored (e.g. over_refusal, length_tokens), or a preference-layer "
        "metric: held_out_pair_accuracy, win_rate, win_rate_lc."))
    max_increase: float | None = Field(None, ge=0, description="Margin: largest allowed rise of the mean, candidate - baseline (units of the metric).")
    max_decrease: float | None = Field(None, ge=0, description="Margin: largest allowed fall of the mean, baseline - candidate (units of the metric).")
    max_ratio: float | None = Field(None, gt=0, description="Margin: largest allowed candidate mean / baseline mean (e.g. 1.3 = 30% longer).")
    min_ratio: float | None = Field(None, gt=0, description="Margin: smallest allowed candidate mean / baseline mean.")
    max_value: float | None = Field(None, description="Hard limit: largest allowed candidate mean, whatever the baseline (e.g. under_refusal 0.05).")
    min_value: float | None = Field(None, description="Hard limit: smallest allowed candidate mean, whatever the baseline (e.g. held_out_pair_accuracy 0.55).")
    slices: list[str] | None = Field(None, description=(
        "Where the rule applies: 'overall' and/or 'key=value' slices (e.g. [risk=harmful]). Unset: overall and every "
        "slice of the policy's slice_keys."))
    on_inconclusive: Literal["fail", "warn", "pass"] = Field("warn", description=(
        "What an inconclusive check of this rule means for the verdict: fail (blocks), warn (shown, does not block; "
        "the check's axis is reported inconclusive) or pass."))

    @model_validator(mode="after")
    def _one_bound_at_least(self) -> GateRule:
        if all(getattr(self, b) is None for b in BOUNDS):
            raise ValueError(f"rule for {self.metric!r} sets no bound; give one of {', '.join(BOUNDS)}")
        return self

    def bounds(self) -> list[tuple[str, float]]:
        return [(b, getattr(self, b)) for b in BOUNDS if getattr(self, b) is not None]


class MajorChangePolicy(StrictModel):
    """Stricter terms applied when the candidate's adapter learnt from a dataset version marked as a
    major change from its parent (``prefline data diff``): its rules replace the policy's rules for the
    same metric and add the others; its slice keys are added; set values override."""

    rules: list[GateRule] = Field(default_factory=list, description="Rules replacing (same metric) or adding to the policy's rules.")
    slice_keys: list[str] = Field(default_factory=list, description="Slice keys checked in addition to the policy's.")
    min_items: int | None = Field(None, ge=1, description="Overrides the policy's min_items.")
    error_rate: float | None = Field(None, gt=0, lt=0.5, description="Overrides the policy's error_rate.")
    require_axes: list[Literal["capability", "reliability", "safety"]] = Field(default_factory=list, description="Axes required in addition to the policy's.")


class DriftPolicy(StrictModel):
    """Bounds on the cumulative change from a reference run (``--reference``; a surface's first release
    or one the team pins), so that many small passing steps cannot add up to a large drift."""

    rules: list[GateRule] = Field(description="Rules checked candidate vs the reference run, like the policy's rules against the baseline.")


class GatePolicy(StrictModel):
    """Which metrics gate a release, in which slices, and how sure the gate must be."""

    name: str = Field("default", description="Shown in reports and stored with each decision.")
    rules: list[GateRule] = Field(default_factory=list, description="The bounds; each rule is checked overall and in every slice (or its `slices`).")
    all_metrics: bool = Field(False, description=(
        "Also gate every metric the runs scored that no rule names, with the default margin for its direction: a "
        "share (values in [0, 1]) may not get worse by more than 0.10; any other metric may not get worse by more "
        "than 30% (ratio 1.3 for lower-is-better, 1/1.3 for higher-is-better). Neutral metrics are not gated."))
    slice_keys: list[str] = Field(default_factory=lambda: ["intent", "risk", "surface"], description="Slice tags to break results down by.")
    min_items: int = Field(10, ge=2, description="A slice with fewer paired items is inconclusive (too few to judge), never a silent pass.")
    error_rate: float = Field(0.05, gt=0, lt=0.5, description=(
        "Chance of a false fail: a check fails only when its one-sided test is significant at this level after the "
        "correction, and passes when its one-sided (1 - error_rate) bound is inside the margin."))
    correction: Literal["bh", "holm"] = Field("bh", description=(
        "Multiple-comparison control over all checks of one decision: bh (Benjamini-Hochberg, false discovery rate) "
        "or holm (family-wise error). Under no change at all both keep the chance of any false fail at error_rate."))
    require_axes: list[Literal["capability", "reliability", "safety"]] = Field(default_factory=list, description=(
        "Axes that must pass: the verdict is inconclusive (exit 2) when one of them is inconclusive or has no check."))
    bootstrap_samples: int = Field(2000, ge=100, description="Resamples for the paired bootstrap interval of each change (shown, and stored as evidence).")
    seed: int = Field(0, description="Seed of the bootstrap.")
    drift: DriftPolicy | None = Field(None, description="Bounds against a reference run (`prefline gate --reference RUN`).")
    major_change: MajorChangePolicy | None = Field(None, description="Stricter terms when the candidate learnt from a major data change.")

    @model_validator(mode="after")
    def _gates_something(self) -> GatePolicy:
        if not self.rules and not self.all_metrics:  # a policy that checks nothing would pass every candidate
            raise ValueError("rules is empty and all_metrics is false: the policy would gate nothing; give at least one rule or set all_metrics: true")
        return self


def _shipped_policy_files() -> dict[str, Path]:
    root = resources.files("prefline") / "resources" / "policies"
    return {p.name[:-len(".yaml")]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def shipped_policies() -> list[str]:
    return sorted(_shipped_policy_files())


def load_policy(ref: str | Path | None = None) -> GatePolicy:
    """A gate policy by shipped name (``default``, ``release``) or YAML path; None gives ``default``."""
    ref = str(ref or "default")
    shipped = _shipped_policy_files()
    if ref in shipped and not Path(ref).exists():
        return load_yaml(shipped[ref], GatePolicy)
    if not Path(ref).is_file():
        raise PreflineError(f"unknown policy {ref!r}: not a YAML file; shipped policies: {', '.join(shipped_policies())}")
    return load_yaml(ref, GatePolicy)


def load_yaml(path: str | Path, model: type[M], section: str | None = None) -> M:
    """Read a YAML file (optionally one top-level section of it) into ``model``."""
    from prefline.paths import input_file

    path = input_file(path, "YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise PreflineError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if section is not None:
        data = data.get(section, {}) if isinstance(data, dict) else data
    return parse(data, model, str(path))


def parse(data: Any, model: type[M], where: str) -> M:
    """Validate a mapping into ``model``; the error names ``where`` and every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors())
        raise PreflineError(f"{where}: {problems}") from exc


class SurfaceConfig(StrictModel):
    """One product surface (chat, code, voice, ...): what a release on it is evaluated and gated with."""

    suite: str = Field(description="Suite a release on this surface is evaluated on: a shipped name or a suite folder (relative to the surfaces file).")
    policy: str = Field("default", description="Gate policy for promotions on this surface: a shipped name or a YAML file (relative to the surfaces file).")
    model: str | None = Field(None, description="Base model for `base` releases (default: the live adapter's base, else the embedded default).")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig, description="Generation settings for the surface's evaluations.")


class SurfacesFile(StrictModel):
    """``surfaces.yaml``: every surface a release can go to, by name."""

    surfaces: dict[str, SurfaceConfig] = Field(description="Surface name -> its suite, policy, model and decoding.")
