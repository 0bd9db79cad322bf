"""The gate: compare a candidate run with a baseline, slice by slice, and decide.

- :mod:`prefline.gate.comparison`: ``compare(ledger, baseline, candidate, ...) -> Comparison``, every
  metric in every slice with a paired bootstrap interval, a paired test and adjusted p-values.
- :mod:`prefline.gate.compare`: ``compare_runs(ledger, baseline, candidate, policy) -> GateResult``, the
  decision under a gate policy.
"""
