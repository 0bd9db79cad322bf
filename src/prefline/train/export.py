"""Export a trained adapter: its PEFT folder as is, or merged into the base model's weights.

A merged export is a full model folder (weights, config, tokenizer) that transformers loads with
``AutoModelForCausalLM.from_pretrained`` (``AutoModelForSequenceClassification`` for a reward
adapter), and that prefline takes as ``--model``: its ``prefline-model.json`` records its hash and
where it came from (base model, adapter, their hashes). Merging is PEFT's ``merge_and_unload``: each
LoRA pair's product ``B @ A * alpha / r`` is added to the weight it adapts, in fp32.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from prefline.errors import PreflineError
from prefline.hashing import folder_hash
from prefline.ledger import Ledger
from prefline.models import MARKER, load_model, load_tokenizer, resolve_model
from prefline.train.methods import get_method
from prefline.provenance import adapter_path, is_full_model


def export_adapter(ledger: Ledger, name: str, out: str | Path, merge: bool = False) -> Path:
    """Write adapter ``name`` to ``out`` (merged into its base with ``merge``); return the folder."""
    adapter = ledger.get_adapter(name)
    source = adapter_path(adapter)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PreflineError(f"{out} already exists and is not an empty folder; choose a new --out")
    if not out.parent.is_dir():  # as every --out: no folder tree is created from a mistyped path
        raise PreflineError(f"{out}: folder {out.parent} does not exist (create it first)")
    if not merge or is_full_model(source):  # a full fine-tune is already a merged model
        shutil.copytree(source, out, dirs_exist_ok=True)
        return out

    base = resolve_model(adapter["base_model"])
    if base.hash != adapter["base_model_hash"]:
        raise PreflineError(f"adapter {name!r} was trained on {adapter['base_model']} with hash {adapter['base_model_hash'][:12]}, "
                            f"which now hashes {base.hash[:12]}; cannot merge into a different base")
    from peft import PeftModel

    spec = get_method(adapter["method"])
    model = PeftModel.from_pretrained(spec.load(base) if spec.load else load_model(base), str(source))
    merged = model.merge_and_unload()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    load_tokenizer(base).save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({
        "source": f"prefline adapter {adapter['name']} merged into {adapter['base_model']}",
        "base_model": adapter["base_model"], "base_model_hash": adapter["base_model_hash"],
        "adapter": adapter["name"], "adapter_hash": adapter["adapter_hash"],
        "hash": folder_hash(tmp),
    }, indent=2))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
