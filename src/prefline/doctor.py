"""`prefline doctor`: check that the ledger and the files in the home agree, after a crash or a kill.

What it looks for, each as a finding with a kind, a path and what to do:

- ``missing_files``: a dataset version the ledger lists whose pairs (or rejects, signals, audit) file is
  gone, or a finished adapter whose folder is gone;
- ``unlisted_version``: a ``vN`` folder under a dataset that the ledger does not list, and ``.orphan-vN-*``
  folders an ingest moved aside for that reason (a process killed between renaming its folder into
  place and recording it);
- ``stale_partial``: the temporary ``.ingest-PID-*.partial`` folder of an ingest whose process is gone
  (killed outright); ``fix`` removes these, and only these, since nothing refers to them;
- ``in_progress``: the temporary folder of an ingest still running (not a problem; listed so it is seen);
- ``running``: eval runs and adapters still marked running. A run stopped by an error, Ctrl-C or SIGTERM
  is marked failed; one still marked running is in progress or was killed outright (SIGKILL, power loss).

Reading the ledger and listing folders is all it does unless ``fix`` is given.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefline.data.store import partial_folders, process_alive
from prefline.home import home_dir
from prefline.ledger import Ledger

PROBLEMS = ("missing_files", "unlisted_version", "stale_partial")


@dataclass
class Finding:
    kind: str
    path: str
    detail: str
    fixed: bool = False


def check(ledger: Ledger, fix: bool = False) -> list[Finding]:
    """Every disagreement between the ledger and the home's files (see the module's doc); ``fix`` removes stale partials."""
    findings: list[Finding] = []
    listed: dict[str, set[int]] = {}
    for row in ledger.list_datasets():
        listed.setdefault(row["name"], set()).add(row["version"])
        meta = row.get("meta") or {}
        files = [row["path"], row.get("rejects_path"), meta.get("signals_path"), meta.get("audit_path")]
        gone = [f for f in files if f and not Path(f).is_file()]
        if gone:
            findings.append(Finding("missing_files", gone[0], f"dataset {row['name']}@{row['version']} (id {row['id']}): "
                                    f"{len(gone)} of its files are gone ({', '.join(Path(g).name for g in gone)})"))
    root = home_dir("datasets")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for version in sorted(folder.iterdir()):
            name = version.name
            if name.startswith(".orphan-"):
                findings.append(Finding("unlisted_version", str(version), f"moved aside by an ingest: no ledger row pointed to it "
                                        "(left by a process killed between rename and record); inspect it, then delete it"))
            elif name.startswith("v") and name[1:].isdigit() and int(name[1:]) not in listed.get(folder.name, set()):
                findings.append(Finding("unlisted_version", str(version), f"dataset {folder.name}: folder {name} is in no ledger row; "
                                        "the next ingest of this name moves it aside"))
    for folder, pid in partial_folders():
        if pid is not None and process_alive(pid):
            findings.append(Finding("in_progress", str(folder), f"an ingest still running (process {pid})"))
            continue
        finding = Finding("stale_partial", str(folder), f"the temporary folder of an ingest that was killed "
                          f"({'process ' + str(pid) + ' is gone' if pid else 'written by an older prefline'}); `prefline doctor --fix` removes it")
        if fix:
            shutil.rmtree(folder, ignore_errors=True)
            finding.fixed = not folder.exists()
        findings.append(finding)
    for adapter in ledger.list_adapters():
        if adapter["status"] == "done" and adapter.get("path") and not Path(adapter["path"]).exists():
            findings.append(Finding("missing_files", adapter["path"], f"adapter {adapter['name']} (id {adapter['id']}): its folder is gone"))
        elif adapter["status"] == "running":
            findings.append(Finding("running", adapter.get("path") or "", f"adapter {adapter['name']} is marked running: in progress, "
                                    f"or killed outright (resume it: prefline train resume {adapter['name']})"))
    for run in ledger.list_runs():
        if run["status"] == "running":
            findings.append(Finding("running", "", f"eval run {run['id']} is marked running since {run['created_at']}: in progress, "
                                    "or killed outright (the same eval command resumes from its cached generations)"))
    return findings


def as_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    return [asdict(f) for f in findings]
