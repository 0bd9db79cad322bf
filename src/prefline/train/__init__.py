"""Training: the method table and the run that turns a dataset version into an adapter.

Modules: ``methods`` (the table), ``run`` (train, resume), ``weights`` (per-pair weights over TRL),
``traps`` (warnings from step metrics), ``probes`` (drift probes), ``surfaces`` (surface defaults),
``records`` (probe and resume records in the ledger), ``export`` (PEFT or merged model folders).
"""

from prefline.train.methods import METHODS, Method, get_method

__all__ = ["METHODS", "Method", "get_method"]
