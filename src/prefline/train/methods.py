"""The method table: one entry per training method, mapping its name to TRL.

Adding a method is adding an entry: which TRL trainer and config class run it, how the
dataset's pairs become that trainer's rows, whether it keeps a reference model, which of
``TrainConfig``'s method-specific fields it reads, and which TRL arguments encode its
loss. ``prefline.config.TrainConfig`` documents every field; the shared ones (learning
rate, LoRA, lengths, ...) are passed to every trainer by ``prefline.train.run``.

Pinned to TRL 1.16: ``simpo`` and ``orpo`` run on ``trl.experimental`` trainers, whose
import paths and arguments may move in later releases (``tests/test_methods.py`` checks).
The DPO-family entries (dpo, ipo, hinge, robust, ld-dpo) run through ``weighted``, prefline's
small seam over TRL's DPOTrainer that scales each pair's loss by the dataset's ``weight``
(``prefline.train.weights``); the other methods refuse datasets with weights below 1.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefline.config import TrainConfig
from prefline.errors import PreflineError

if TYPE_CHECKING:
    from datasets import Dataset

    from prefline.models import ModelRef

# TrainConfig fields that only some methods read. A method that does not read one refuses a
# non-default value for it, so a setting never silently does nothing.
METHOD_FIELDS = ("beta", "label_smoothing", "ld_alpha", "rpo_alpha", "simpo_gamma", "precompute_ref_log_probs", "group_by_length")
# The dataset column holding each pair's confidence in (0, 1] (``prefline.data.schema.Pair.weight``).
WEIGHT_COLUMN = "weight"


# --- how the dataset's pairs become a trainer's rows ------------------------------------
# ``pairs`` has the columns prompt, chosen, rejected: lists of {"role", "content"} messages,
# which is TRL's conversational preference format.


def as_pairs(pairs: Dataset, config: TrainConfig) -> Dataset:  # noqa: ARG001
    """Unchanged: prompt + chosen + rejected."""
    return pairs


def as_labelled_rows(pairs: Dataset, config: TrainConfig) -> Dataset:
    """Each pair becomes two rows: prompt + chosen labelled desirable (True), prompt + rejected
    labelled undesirable (False). Shuffled with the seed: KTO reads batches in order and
    estimates its KL term from each row's prompt with a neighbour's completion, so a batch
    must mix labels and prompts."""
    from datasets import Dataset

    n = len(pairs)
    rows = Dataset.from_dict({
        "prompt": list(pairs["prompt"]) * 2,
        "completion": list(pairs["chosen"]) + list(pairs["rejected"]),
        "label": [True] * n + [False] * n,
    })
    return rows.shuffle(seed=config.seed).flatten_indices()


def as_completions(pairs: Dataset, config: TrainConfig) -> Dataset:  # noqa: ARG001
    """prompt + chosen as the completion; the rejected responses are not used."""
    return pairs.remove_columns("rejected").rename_column("chosen", "completion")


def load_reward_model(ref: ModelRef):
    """The base as a sequence classifier with one output (the reward); its ``score`` head is new
    and random, so it is trained in full and saved with the adapter (PEFT's SEQ_CLS default)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    with suppress_seqcls_warning():  # "score.weight newly initialized, lm_head unused": expected here
        model = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=1, dtype=torch.float32)
    model.eval()
    return model


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # one line, for listings
    summary: str  # the loss, in a sentence or two
    paper: str
    trainer: str  # "module:Class" in TRL, imported when a run starts
    config: str  # its config class, "module:Class"
    data: str  # what the trainer sees, made from the dataset's pairs by ``prepare``
    reference: bool  # keeps a reference model (with LoRA: the base with the adapter disabled)
    uses: tuple[str, ...]  # the METHOD_FIELDS it reads
    trl_args: Callable[[TrainConfig], dict[str, Any]]  # method-specific arguments of the config class
    prepare: Callable[[Dataset, TrainConfig], Dataset] = as_pairs
    beta: float = 0.1  # its default beta, when "beta" is in ``uses`` and the config leaves it unset
    lora_task: str = "CAUSAL_LM"
    load: Callable[[ModelRef], Any] | None = None  # how to load the base; None: as a causal LM
    check: Callable[[TrainConfig], str | None] | None = None  # a further requirement on the config
    # prefline's seam over ``trainer`` that scales each pair's loss by the dataset's ``weight``
    # (``prefline.train.weights``); None: the method refuses datasets with weights below 1.
    weighted: str | None = None

    def trainer_class(self) -> type:
        return _import(self.weighted or self.trainer)

    def config_class(self) -> type:
        return _import(self.config)

    def resolve(self, config: TrainConfig) -> TrainConfig:
        """``config`` with this method's defaults filled in, or a PreflineError naming the field.

        Runs before any model is loaded: a method-specific field that this method does not
        read must keep its default, and the method's own requirements must hold.
        """
        for field in METHOD_FIELDS:
            value = getattr(config, field)
            if field not in self.uses and value != TrainConfig.model_fields[field].default:
                users = ", ".join(m.name for m in METHODS.values() if field in m.uses)
                raise PreflineError(f"{field}={value!r} has no effect on method {self.name!r}; it is read by: {users}")
        problem = self.check(config) if self.check else None
        if problem:
            raise PreflineError(f"method {self.name!r}: {problem}")
        if "beta" in self.uses and config.beta is None:
            config = config.model_copy(update={"beta": self.beta})
        return config

    def settings(self, config: TrainConfig) -> dict[str, Any]:
        """The run's settings as recorded in the ledger: shared fields and the ones this method reads."""
        return {"method": self.name, **config.model_dump(exclude={f for f in METHOD_FIELDS if f not in self.uses})}

    def doc(self) -> str:
        """The method's help: its loss, data, reference model, hyper-parameters and paper."""
        def default(field: str):  # noqa: ANN202
            value = self.beta if field == "beta" else TrainConfig.model_fields[field].default
            return "unset: see its description" if value is None else value

        params = [f"{f} (default {default(f)})" for f in self.uses]
        reference = "yes (the base model with the adapter disabled)" if self.reference else "none"
        weights = "each pair's loss is scaled by its weight" if self.weighted else "refused below 1"
        return (
            f"{self.summary}\n\n"
            f"Data: {self.data}. Per-pair weights: {weights}. Reference model: {reference}. "
            f"Method hyper-parameters: {', '.join(params) or 'none beyond the shared ones'}. "
            f"Paper: {self.paper}. Runs TRL's {self.trainer.split(':')[1]}."
        )


def _import(path: str) -> type:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _dpo(loss_type: str, **extra: Callable[[TrainConfig], Any]) -> Callable[[TrainConfig], dict[str, Any]]:
    """DPOConfig arguments for one of its loss types, plus ``extra`` fields read from the config."""
    return lambda c: {
        "loss_type": [loss_type], "beta": c.beta, "precompute_ref_log_probs": bool(c.precompute_ref_log_probs),
        "train_sampling_strategy": "group_by_length" if c.group_by_length else "random",
        **{name: read(c) for name, read in extra.items()},
    }


def _kto_batch(config: TrainConfig) -> str | None:
    if config.batch_size < 2:
        return f"batch_size={config.batch_size}: kto needs at least 2 rows per batch (its KL term pairs each prompt with another row's completion)"
    return None


PAIRS = "pairs (prompt, chosen, rejected)"
DPO = ("trl:DPOTrainer", "trl:DPOConfig")
WEIGHTED_DPO = "prefline.train.weights:WeightedDPOTrainer"

METHODS: dict[str, Method] = {m.name: m for m in [
    Method(
        name="dpo", title="DPO: sigmoid loss on the margin over a reference model",
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True, weighted=WEIGHTED_DPO,
        uses=("beta", "precompute_ref_log_probs", "group_by_length"), trl_args=_dpo("sigmoid"),
        summary="Direct Preference Optimization: loss -log sigmoid(beta * D), where D is the chosen minus the "
                "rejected log-probability ratio to the reference.",
        paper="Rafailov et al. 2023, Direct Preference Optimization (arXiv:2305.18290)",
    ),
    Method(
        name="ipo", title="IPO: squared loss pulling the margin to a target",
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True, weighted=WEIGHTED_DPO,
        uses=("beta", "precompute_ref_log_probs", "group_by_length"), trl_args=_dpo("ipo"),
        summary="Identity Preference Optimization: squared loss (D' - 1/(2 beta))^2, where D' is D averaged per "
                "response token; the margin is pulled to a target instead of pushed without bound, which resists "
                "overfitting near-deterministic preferences.",
        paper="Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences (arXiv:2310.12036)",
    ),
    Method(
        name="hinge", title="Hinge loss on the DPO margin (SLiC)",
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True, weighted=WEIGHTED_DPO,
        uses=("beta", "precompute_ref_log_probs", "group_by_length"), trl_args=_dpo("hinge"),
        summary="Hinge loss relu(1 - beta * D) on the DPO margin: pairs already separated by 1/beta stop "
                "contributing.",
        paper="Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback (arXiv:2305.10425)",
    ),
    Method(
        name="robust", title="Robust DPO for noisy preference labels",
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True, weighted=WEIGHTED_DPO,
        uses=("beta", "label_smoothing", "precompute_ref_log_probs", "group_by_length"),
        trl_args=_dpo("robust", label_smoothing=lambda c: c.label_smoothing),
        summary="Robust DPO for noisy labels: with e = label_smoothing, the probability that a label is flipped, "
                "loss ((1 - e) L(D) - e L(-D)) / (1 - 2e) with L(x) = -log sigmoid(beta * x), an unbiased estimate "
                "of the DPO loss on the true labels.",
        paper="Chowdhury et al. 2024, Provably Robust DPO: Aligning Language Models with Noisy Feedback (arXiv:2403.00409)",
    ),
    Method(
        name="ld-dpo", title="Length-desensitized DPO",
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True, weighted=WEIGHTED_DPO,
        uses=("beta", "ld_alpha", "precompute_ref_log_probs", "group_by_length"),
        trl_args=_dpo("sigmoid", ld_alpha=lambda c: c.ld_alpha),
        summary="Length-desensitized DPO: the DPO loss with the log-probabilities of the tokens past the shorter "
                "response's length scaled by ld_alpha, so a length difference alone moves the margin less.",
        paper="Liu et al. 2024, Length Desensitization in Direct Preference Optimization (arXiv:2409.06411)",
    ),
    Method(
        name="rpo", title="RPO: DPO plus the chosen responses' negative log-likelihood",
        # Not weighted: TRL adds the NLL as one batch mean expanded to a per-pair view, and the weighting
        # hook's in-place product on that view is refused by PyTorch; pairs with weights below 1 are refused.
        trainer=DPO[0], config=DPO[1], data=PAIRS, reference=True,
        uses=("beta", "rpo_alpha"),
        trl_args=lambda c: {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, c.rpo_alpha], "beta": c.beta},
        summary="The DPO loss plus rpo_alpha times the negative log-likelihood of the chosen response: the model "
                "is pulled toward the chosen answers themselves as well as away from the rejected ones, which keeps "
                "the chosen answers' likelihood from falling with the rejected ones' on small data.",
        paper="Pang et al. 2024, Iterative Reasoning Preference Optimization (arXiv:2404.19733)",
    ),
    Method(
        name="simpo", title="SimPO: reference-free, length-normalized margin",
        trainer="trl.experimental.cpo:CPOTrainer", config="trl.experimental.cpo:CPOConfig",
        data=PAIRS, reference=False, uses=("beta", "simpo_gamma"), beta=2.0,
        # cpo_alpha=0 drops CPO's behaviour-cloning term, which leaves the SimPO loss alone.
        trl_args=lambda c: {"loss_type": "simpo", "cpo_alpha": 0.0, "beta": c.beta, "simpo_gamma": c.simpo_gamma},
        summary="Simple Preference Optimization, reference-free: loss -log sigmoid(beta * (a_c - a_r) - gamma), "
                "where a_c and a_r are the average per-token log-probabilities of the chosen and rejected "
                "responses and gamma = simpo_gamma is a target margin.",
        paper="Meng et al. 2024, SimPO: Simple Preference Optimization with a Reference-Free Reward (arXiv:2405.14734)",
    ),
    Method(
        name="orpo", title="ORPO: SFT plus an odds-ratio penalty, reference-free",
        trainer="trl.experimental.orpo:ORPOTrainer", config="trl.experimental.orpo:ORPOConfig",
        data=PAIRS, reference=False, uses=("beta",),
        trl_args=lambda c: {"beta": c.beta},
        summary="Odds Ratio Preference Optimization, reference-free and with no separate SFT step: the chosen "
                "response's language-model loss minus beta * log sigmoid(log odds(chosen) - log odds(rejected)), "
                "on average per-token log-probabilities (beta is the paper's lambda).",
        paper="Hong et al. 2024, ORPO: Monolithic Preference Optimization without Reference Model (arXiv:2403.07691)",
    ),
    Method(
        name="kto", title="KTO: desirable and undesirable responses, unpaired",
        trainer="trl:KTOTrainer", config="trl:KTOConfig",
        data="unpaired rows (prompt, completion, label), two per pair: chosen labelled desirable, rejected "
             "undesirable, shuffled with the seed",
        reference=True, uses=("beta", "precompute_ref_log_probs"), prepare=as_labelled_rows, check=_kto_batch,
        trl_args=lambda c: {"loss_type": "kto", "beta": c.beta, "precompute_ref_log_probs": bool(c.precompute_ref_log_probs)},
        summary="Kahneman-Tversky Optimization: each response is scored on its own, desirable ones by "
                "1 - sigmoid(beta * (r - z)) and undesirable ones by 1 - sigmoid(beta * (z - r)), where r is its "
                "log-probability ratio to the reference and z a batch estimate of the KL divergence.",
        paper="Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization (arXiv:2402.01306)",
    ),
    Method(
        name="sft", title="Supervised fine-tuning on the chosen responses",
        trainer="trl:SFTTrainer", config="trl:SFTConfig",
        data="prompt + chosen as the completion (rejected unused)", reference=False, uses=(), prepare=as_completions,
        trl_args=lambda c: {"completion_only_loss": True},
        summary="Supervised fine-tuning on the chosen responses: cross-entropy on the completion tokens only.",
        paper="Ouyang et al. 2022, Training language models to follow instructions with human feedback (arXiv:2203.02155), its supervised step",
    ),
    Method(
        name="reward", title="Bradley-Terry reward model (LoRA and a score head)",
        trainer="trl:RewardTrainer", config="trl:RewardConfig",
        data=PAIRS, reference=False, uses=(), lora_task="SEQ_CLS", load=load_reward_model,
        trl_args=lambda c: {},
        summary="A Bradley-Terry reward model: the base with a one-output score head, trained with loss "
                "-log sigmoid(r_chosen - r_rejected). The adapter (LoRA plus the score head) scores responses; it "
                "does not generate.",
        paper="Ouyang et al. 2022, Training language models to follow instructions with human feedback (arXiv:2203.02155), its reward model",
    ),
]}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise PreflineError(f"unknown training method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]
