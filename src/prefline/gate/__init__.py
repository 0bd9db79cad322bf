"""The gate: compare a candidate run with a baseline, slice by slice, and decide."""
