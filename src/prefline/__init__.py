"""prefline: preference optimization run as a verifiable program.

Preference data in, LoRA adapters out, and an evaluation aligned with what ships
deciding whether an adapter may ship. Every stage records what it did in the ledger.
"""

__version__ = "0.1.0"

from prefline.errors import PreflineError

__all__ = ["PreflineError", "__version__"]
