"""A Lasso whose partials are NaN on the worker whose device is $SMPFRAME_TEST_POISON."""
from __future__ import annotations

import os

import numpy as np

from smpframe.apps.lasso import Lasso


class PoisonedLasso(Lasso):
    name = "poisoned-lasso"

    def push(self, wctx, fragment, block):
        partial = super().push(wctx, fragment, block)
        if wctx.device == os.environ.get("SMPFRAME_TEST_POISON"):
            partial["sr"] = float("nan")
            partial = {k: (np.full_like(v, np.nan) if isinstance(v, np.ndarray) else v)
                       for k, v in partial.items()}
        return partial
