"""seco_lab: learn and try self-supervised video representation learning.

SeCo (sequence contrastive learning), CVRL (contrastive clips) and DualVar (dual
representations) with a shared data layer, training loop and evaluation suite, driven by
ordered notebooks or by ``python -m seco_lab``.
"""

__version__ = "0.1.0"
