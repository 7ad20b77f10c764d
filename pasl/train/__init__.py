"""Training and fine-tuning: the AEG with the release's objective, and the CSG's shape encoder with the paper's cycle
consistency (:mod:`pasl.train.csg`). ``python -m pasl.train --config FILE`` (or ``--preset finetune-person``), one
process or under ``torchrun``."""
