"""Training: the method table and the run that turns a dataset version into an adapter."""

from prefline.train.methods import METHODS, Method, get_method

__all__ = ["METHODS", "Method", "get_method"]
