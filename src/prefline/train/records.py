"""What a training run reads and writes in the ledger beyond ``Ledger``'s own adapter and step calls:
drift probes (table ``train_probes``, migration m005) and, on resume, dropping the records a killed
run wrote after its last checkpoint (the resumed run writes those steps again)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from prefline.ledger import Ledger


def add_probe(ledger: Ledger, adapter_id: int, step: int, metrics: dict[str, Any], outputs: list[dict[str, Any]]) -> None:
    t = ledger.t["train_probes"]
    with ledger.engine.begin() as conn:
        conn.execute(t.insert().values(adapter_id=adapter_id, step=step, metrics=metrics, outputs=outputs,
                                       created_at=datetime.now(timezone.utc).replace(tzinfo=None)))


def probes(ledger: Ledger, adapter_id: int) -> list[dict[str, Any]]:
    t = ledger.t["train_probes"]
    with ledger.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).where(t.c.adapter_id == adapter_id).order_by(t.c.step))]


def forget_after(ledger: Ledger, adapter_id: int, step: int) -> None:
    """Delete the step metrics and probes recorded after ``step`` (a resumed run records them again)."""
    with ledger.engine.begin() as conn:
        for name in ("train_steps", "train_probes"):
            t = ledger.t[name]
            conn.execute(t.delete().where(t.c.adapter_id == adapter_id, t.c.step > step))
