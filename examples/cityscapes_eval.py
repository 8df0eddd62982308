"""cityscapesScripts' official pixel-level evaluator (``csEvalPixelLevelSemanticLabeling``), with
NumPy 2.4 or later.

cityscapesScripts 2.3.0 calls ``np.in1d``, which NumPy 2.4 removed (mcordts/cityscapesScripts
pull request 196, open). Its instance-level scores, on by default and computed whenever gtFine
holds ``*_gtFine_instanceIds.png`` (as Cityscapes does), stop with ``AttributeError: module
'numpy' has no attribute 'in1d'`` after the first image. This runs the same evaluator, with the
same environment (``CITYSCAPES_DATASET``, ``CITYSCAPES_RESULTS``, ``CITYSCAPES_EXPORT_DIR``) and
arguments, after putting ``np.in1d`` back where it is missing as what it computed: ``np.isin``
of the flattened first array. Its scores are the evaluator's own.

  CITYSCAPES_DATASET=/data/cityscapes CITYSCAPES_RESULTS=runs/paper/pred-val python examples/cityscapes_eval.py
"""

import sys

import numpy as np


def in1d(ar1, ar2, assume_unique=False, invert=False, **kind):
    """NumPy's removed ``in1d``: a 1-D boolean array, one entry per element of ``ar1``."""
    return np.isin(np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert, **kind)


if __name__ == "__main__":
    if not hasattr(np, "in1d"):
        np.in1d = in1d
    from cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling import main

    sys.exit(main())
