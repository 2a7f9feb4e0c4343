"""factroots: trace the roots of facts in multilingual language models."""

import os as _os

# OpenMP threads that spin while waiting made torch 10x slower on small shared machines
# (measured in the lab's training); it must be set before torch is first imported.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
