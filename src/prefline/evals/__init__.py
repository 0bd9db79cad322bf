"""Evaluation: suites, generation backends, scorers, and runs stored in the ledger."""
