"""Terminal rendering of dataset versions: ingest results, agreement, quality reports, splits, mixes and diffs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from prefline.report.terminal import pct, table
from prefline.report.text import plain, safe

if TYPE_CHECKING:
    from prefline.ledger import Ledger


def print_problems(err: Console, result: Any) -> None:
    """The first 50 problems of an ingest (rejected rows, unknown fields); ``err`` is a stderr console."""
    for problem in result.problems[:50]:
        err.print(plain(problem), markup=False)
    if len(result.problems) > 50:
        err.print(plain(f"... and {len(result.problems) - 50} more in {result.rejects_path}"), markup=False)


def ingest_notes(err: Console, ledger: Ledger, result: Any) -> None:
    """An ingest that repeats stored pairs, and a name that already had versions, said out loud on ``err``."""
    others = [d for d in ledger.list_datasets() if d["id"] != result.dataset_id]
    same = [f"{d['name']}@{d['version']}" for d in others if d["content_hash"] == result.content_hash]
    if same:
        err.print(f"note: {', '.join(same)} already holds exactly these pairs (same content hash {result.content_hash[:12]}); "
                  f"{result.name}@{result.version} is a new version with nothing new in it", markup=False)
    earlier = [d["version"] for d in others if d["name"] == result.name]
    if earlier:
        err.print(f"note: dataset {result.name} already had version(s) {', '.join(map(str, sorted(earlier)))}: this ingest created "
                  f"{result.name}@{result.version}, which `--data {result.name}` now picks (`--data {result.name}@{max(earlier)}` for the previous one)",
                  markup=False)


def print_ingest(console: Console, result: Any) -> None:
    counts = (f"  read {result.n_read} = accepted {result.n_accepted} + rejected {result.n_rejected}"
              f" + duplicates {result.n_duplicates} + excluded {result.n_excluded}")
    lines = [f"dataset [bold]{safe(result.name)}@{result.version}[/bold] (id {result.dataset_id}, hash {result.content_hash[:12]})", counts]
    if result.excluded:
        lines.append("  excluded: " + ", ".join(f"{safe(category)} {n}" for category, n in result.excluded.items()))
    if result.signal != "pairs" or result.consensus != "none":
        lines.append(f"  pairs {result.n_pairs} ({result.signal} signals, consensus {result.consensus})")
    if result.stats:
        lines.append("  counts: " + ", ".join(f"{safe(key)} {n}" for key, n in result.stats.items()))
    lines.append(f"  pairs:   {safe(result.path)}\n  rejects: {safe(result.rejects_path)}")
    if result.audit_path:
        lines.append(f"  audit:   {safe(result.audit_path)}")
    console.print("\n".join(lines))


def print_datasets(console: Console, rows: list[dict[str, Any]]) -> None:
    console.print(table("datasets", ["id", "name@version", "pairs", "read", "accepted", "rejected", "duplicates", "excluded", "hash", "created"],
                        [[r["id"], f"{r['name']}@{r['version']}", r.get("n_pairs") or r["n_accepted"], r["n_read"], r["n_accepted"], r["n_rejected"],
                          r["n_duplicates"], r.get("n_excluded") or 0, r["content_hash"][:12], r["created_at"]] for r in rows]))


def print_agreement(console: Console, report: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    def line(name: str, s: dict[str, Any]) -> list[Any]:
        return [name, s["n_items"], s["n_items_multi"], s["n_votes"], s["n_annotators"], fmt(s["alpha"]), fmt(s["percent_agreement"])]

    columns = ["", "items", "items with 2+ votes", "votes", "annotators", "alpha", "% agreement"]
    rows = [line("overall", report["overall"])] + [line(k, v) for k, v in report["slices"].items()] + [line(f"axis {k}", v) for k, v in report["axes"].items()]
    console.print(table(f"agreement in {report['dataset']}", columns, rows))
    console.print(table("annotators", ["annotator", "votes", "vote pairs", "agreement with others", "alpha without", "flagged"],
                        [[a, s["n_votes"], s["n_vote_pairs"], fmt(s["agreement_with_others"]), fmt(s["alpha_without"]), s["why"] or ""]
                         for a, s in report["annotators"].items()]))


def print_data_report(console: Console, r: dict[str, Any]) -> None:
    d, cov, bias, neg, dup, con = r["dataset"], r["coverage"], r["bias"], r["negatives"], r["duplicates"], r["contamination"]
    console.print(f"[bold]{safe(d['name'])}@{d['version']}[/bold]: {d['pairs']} pairs (hash {d['content_hash'][:12]})")
    targets = {(t["key"], t["value"]): t for t in cov["targets"]}
    rows = []
    for key, values in cov["keys"].items():
        for value, count in values.items():
            t = targets.get((key, value), {})
            rows.append([key, value, count, f"{count / max(d['pairs'], 1):.1%}", pct(t.get("target_share")), t.get("min_pairs") or "",
                         f"short by {t['short_by']}" if t.get("shortfall") else ""])
        if cov["untagged"][key]:
            rows.append([key, "(untagged)", cov["untagged"][key], f"{cov['untagged'][key] / max(d['pairs'], 1):.1%}", "", "", ""])
    rows += [[t["key"], t["value"], 0, "0.0%", pct(t["target_share"]), t["min_pairs"] or "", f"short by {t['short_by']}"]
             for t in cov["targets"] if t["value"] not in cov["keys"].get(t["key"], {})]
    console.print(table("coverage", ["slice", "value", "pairs", "share", "target share", "min pairs", "shortfall"], rows))
    if cov["missing_keys"]:
        console.print("  not tagged: " + safe(", ".join(cov["missing_keys"])))
    markers = [m for m in ("refuses", "hedges", "cites") if f"chosen_{m}" in bias["overall"]]
    columns = ["group", "pairs", "chosen longer", "length ratio"] + [f"{m} (chosen/rejected)" for m in markers]
    groups = [("overall", bias["overall"])] + [(f"source={k}", v) for k, v in bias["by_source"].items()] + list(bias["by_slice"].items())
    console.print(table("bias profile", columns, [
        [label, s["pairs"], pct(s.get("chosen_longer")), s.get("length_ratio_mean", "")] +
        [f"{pct(s.get(f'chosen_{m}'))} / {pct(s.get(f'rejected_{m}'))}" for m in markers] for label, s in groups]))
    missing = [name for name, origin in bias["detectors"].items() if origin is None]
    if missing:
        console.print("  detectors not installed: " + safe(", ".join(missing)))
    if bias.get("position"):
        p = bias["position"]
        console.print(f"  judge position: first-shown response picked in {pct(p['first_share'])} of {p['judgements']} judgements")
    for warning in bias["warnings"]:
        console.print(f"[yellow]warning[/yellow]: {safe(warning)}", markup=True, highlight=False)
    flags = ", ".join(f"{k} {v}" for k, v in neg["flags"].items())
    console.print(f"negatives: {flags}; teach nothing: {neg['teach_nothing']} ({pct(neg['teach_nothing_share'])})")
    close = neg.get("close_calls")
    if close:
        console.print(f"  close calls ({safe(close['model'])}, {close['pairs_scored']} pairs): close {close['close']}, "
                      f"already separated {close['separated']}, reversed {close['reversed']}, mean margin {close['mean_margin']} nats/token")
    console.print(f"duplicates: exact {dup['exact']['redundant_pairs']} redundant pairs in {dup['exact']['groups']} groups; "
                  f"near {dup['near']['redundant_pairs']} in {dup['near']['groups']} groups")
    suites = safe(", ".join(f"{s['suite']}@{s['version']}" for s in con["suites"]) or "no frozen suites in the ledger")
    console.print(f"contamination ({suites}): {con['contaminated_pairs']} pairs match {con['contaminated_items']} items")
    if con["items"]:
        console.print(table("contaminated items", ["suite", "item", "pairs", "n-gram overlap", "jaccard", "prompt"],
                            [[f"{i['suite']}@{i['version']}", i["item_id"], i["pairs"], i["max_ngram_overlap"], i["max_jaccard"],
                              i["prompt"][:60]] for i in con["items"]]))
    if r.get("lineage") and r["lineage"]["parents"]:
        console.print("lineage: " + "; ".join(f"{p['relation']} of {safe(p['dataset'])} (changed {pct(p['changed_share'])}"
                                              f"{', major' if p['major_change'] else ''})" for p in r["lineage"]["parents"]))


def print_version(console: Console, result: dict[str, Any], what: str) -> None:
    """A version derived from others (mix, decontaminate): its counts and each parent's share changed."""
    d = result["dataset"]
    console.print(f"dataset [bold]{safe(d['name'])}@{d['version']}[/bold] (id {d['id']}, hash {d['content_hash'][:12]}): {d['pairs']} pairs; {safe(what)}")
    for p in result["parents"]:
        console.print(f"  parent {safe(p['dataset'])} ({p['relation']}): changed {pct(p['changed_share'])}{', MAJOR change' if p['major_change'] else ''}")
    console.print(f"  pairs: {safe(d['path'])}")


def mix_summary(result: dict[str, Any]) -> str:
    """What a mix kept of each parent: ``tiny x0.5: 10 of 20, ...``."""
    return ", ".join(f"{p['dataset']} x{p['params']['weight']:g}: {p['params']['pairs_kept']} of {p['params']['pairs_in']}"
                     for p in result["parents"] if p["relation"] == "mix")


def print_split(console: Console, result: dict[str, Any]) -> None:
    train, held = result["train"]["dataset"], result["heldout"]["dataset"]
    console.print(f"{safe(result['parent'])} split by prompt, stratified by slice (seed {result['seed']}): "
                  f"{result['heldout_prompts']} of {result['prompts']} prompts held out")
    for side, d in (("train", train), ("held out", held)):
        console.print(f"  {side}: dataset [bold]{safe(d['name'])}@{d['version']}[/bold], {d['pairs']} pairs (hash {d['content_hash'][:12]})")


def print_diff(console: Console, change: dict[str, Any]) -> None:
    o, n = change["old"], change["new"]
    console.print(f"{safe(o['name'])}@{o['version']} ({o['pairs']}) -> {safe(n['name'])}@{n['version']} ({n['pairs']}): "
                  f"+{change['added']} -{change['removed']} ={change['kept']}; changed {pct(change['changed_share'])}"
                  f"{' (MAJOR change, > ' + pct(change['major_share']) + ')' if change['major_change'] else ''}")
    for title, key in (("per source", "by_source"), ("per slice", "by_slice")):
        console.print(table(title, ["group", "old", "new", "change"],
                            [[k, v["old"], v["new"], f"{v['change']:+d}"] for k, v in change[key].items()]))
    console.print(table("bias profile", ["measure", "old", "new", "change"],
                        [[k, v["old"], v["new"], "" if v["change"] is None else f"{v['change']:+.4f}"] for k, v in change["bias"].items()]))
