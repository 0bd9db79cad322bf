"""The demo: the whole walking path on shipped data, printing where everything went.

1. ingest the shipped demo pairs (61 valid pairs and 3 bad rows, to show the accounting);
2. evaluate the base model on a shipped suite, ``smoke`` by default (the baseline run);
3. train a DPO LoRA adapter on the pairs;
4. evaluate base + adapter on the same suite (the candidate run), and show every metric the
   suite's scorers produce, style next to behaviour and evidence, for both runs;
5. the preference layer: held-out pair accuracy of the adapter on 24 pairs it never saw,
   and the candidate's win rate over the baseline judged by the base model itself, in both
   orders, raw and length-controlled;
6. gate the candidate against the baseline (the ``release`` policy on the ``release`` suite,
   else the ``default`` policy), the preference layer's metrics included where a rule names them.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from rich.console import Console

from prefline.config import DecodingConfig, TrainConfig, load_policy
from prefline.data.ingest import ingest
from prefline.evals.preference_eval import make_judge, pair_accuracy_eval, win_rate_eval
from prefline.evals.run import run_eval
from prefline.evals.suite import load_suite
from prefline.gate.compare import compare_runs
from prefline.ledger import Ledger
from prefline.models import resolve_model
from prefline.report.terminal import metrics_overview, print_gate
from prefline.train.run import train

DEMO_TRAIN = TrainConfig(epochs=1, learning_rate=5e-4, beta=0.1, batch_size=4, max_length=384)
DEMO_DECODING = DecodingConfig(max_new_tokens=128, batch_size=16)


def demo_pairs_path(name: str = "pairs.jsonl") -> Path:
    return Path(str(resources.files("prefline") / "resources" / "demo" / name))


def run_demo(ledger: Ledger, console: Console, model_spec: str | None = None, max_steps: int | None = None,
             suite_name: str = "smoke"):
    began = time.perf_counter()

    def step(title: str) -> None:
        console.rule(f"[bold]{title}[/bold]  ({time.perf_counter() - began:.0f} s)")

    step("0. model")
    model = resolve_model(model_spec)
    console.print(f"base model {model.spec} at {model.path} (hash {model.hash[:12]})")

    step("1. data ingest")
    data = ingest(demo_pairs_path(), "demo", ledger)
    for problem in data.problems:
        console.print(f"  {problem}", markup=False)
    console.print(f"dataset demo@{data.version}: read {data.n_read} = accepted {data.n_accepted} + rejected {data.n_rejected} + duplicates {data.n_duplicates}")

    suite = load_suite(suite_name)
    policy = load_policy("release" if suite.name == "release" else "default")
    step(f"2. baseline eval on suite {suite.name} ({len(suite.items)} items)")
    baseline = run_eval(suite, ledger, model_spec=model.spec, decoding=DEMO_DECODING)

    step("3. train dpo (LoRA)")
    config = DEMO_TRAIN.model_copy(update={"max_steps": max_steps}) if max_steps else DEMO_TRAIN
    name = _free_adapter_name(ledger, f"demo-dpo-v{data.version}")
    adapter = train("dpo", f"demo@{data.version}", name, config, ledger, model_spec=model.spec)
    last = adapter["metrics"].get("last", {})
    console.print(f"adapter {name}: {adapter['metrics']['steps']} steps, final loss {last.get('loss', float('nan')):.3f}, "
                  f"reward accuracy {last.get('rewards/accuracies', float('nan')):.2f}, margin {last.get('rewards/margins', float('nan')):+.3f}")

    step("4. candidate eval (base + adapter)")
    candidate = run_eval(suite, ledger, model_spec=model.spec, adapter=name, decoding=DEMO_DECODING)
    console.print(metrics_overview(ledger, {f"baseline (run {baseline})": baseline, f"candidate (run {candidate})": candidate}))

    step("5. preference layer")
    heldout = ingest(demo_pairs_path("heldout.jsonl"), "demo-heldout", ledger)
    accuracy = pair_accuracy_eval(ledger, f"demo-heldout@{heldout.version}", name)
    overall = accuracy["slices"]["overall"]
    console.print(f"held-out pair accuracy of {name} on {heldout.n_accepted} unseen pairs: {overall['accuracy']:.3f} "
                  f"[{overall['ci'][0]:.3f}, {overall['ci'][1]:.3f}] (0.5 = no preference learned)")
    judge = make_judge(ledger, "llm", backend="hf", model=model.spec)
    wins = win_rate_eval(ledger, str(baseline), str(candidate), judge)["slices"]["overall"]
    lc = wins.get("length_controlled")
    console.print(f"win rate of the candidate judged by {model.spec} in both orders: raw {wins['raw']['estimate']:.3f} "
                  f"[{wins['raw']['ci'][0]:.3f}, {wins['raw']['ci'][1]:.3f}], length-controlled "
                  + (f"{lc['estimate']:.3f} [{lc['ci'][0]:.3f}, {lc['ci'][1]:.3f}]" if lc else "n/a")
                  + f", judge flip rate {wins['flip_rate']:.2f}")
    if wins.get("warning"):
        console.print(f"warning: {wins['warning']}", markup=False)

    step(f"6. gate (policy {policy.name}; the preference layer's metrics are gateable too)")
    result = compare_runs(ledger, baseline, candidate, policy)
    print_gate(console, result)

    elapsed = time.perf_counter() - began
    console.rule(f"[bold]done in {elapsed:.0f} s[/bold]")
    console.print(
        f"ledger:   {ledger.safe_url}\n"
        f"dataset:  {data.path}\n"
        f"rejects:  {data.rejects_path}\n"
        f"adapter:  {adapter['path']}\n"
        f"runs:     baseline {baseline}, candidate {candidate}\n"
        f"gate:     decision {result.decision_id}, verdict {result.verdict}\n\n"
        "next:\n"
        f"  prefline preference winrate {baseline} {candidate} --judge llm --backend openai --base-url URL --model NAME   a stronger judge\n"
        f"  prefline runs show {candidate} --items      every response with its scores\n"
        f"  prefline adapters show {name}      lineage and the loss curve\n"
        f"  prefline gate {baseline} {candidate} --policy {policy.name}   the gate again (exit 0 pass, 1 fail, 2 inconclusive)"
    )
    return result


def _free_adapter_name(ledger: Ledger, stem: str) -> str:
    name, n = stem, 1
    while ledger.find_adapter(name) is not None:
        n += 1
        name = f"{stem}-{n}"
    return name
