"""The batchmix application: train, evaluate, compare, explain (CAM) and show.

One command line (``batchmix`` or ``python -m batchmix``) walks the path of a classification
study: a dataset and DataLoader with the mix in its collate function, a small ResNet, an
optimiser and schedule, checkpoints that can be resumed, and a report comparing mixing methods
with training curves, mixed-image grids and class activation maps (Zhou et al., "Learning Deep
Features for Discriminative Localization", CVPR 2016), as in the CutMix paper (Yun et al. 2019).

It needs the ``app`` extras (matplotlib, scikit-image, scikit-learn, tqdm, pillow).
"""

from batchmix.app.errors import AppError

__all__ = ["AppError"]
