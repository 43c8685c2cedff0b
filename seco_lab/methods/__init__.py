"""The methods: SeCo, CVRL, DualVar and a supervised baseline, built by name from a config."""

from seco_lab.methods import cvrl, dualvar, seco, supervised
from seco_lab.methods.base import Method, build_method, method_names, register

__all__ = ["Method", "build_method", "method_names", "register", "cvrl", "dualvar", "seco", "supervised"]
