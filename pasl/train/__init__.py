"""Training and fine-tuning the AEG (issue 18): ``python -m pasl.train --config FILE`` or under ``torchrun``."""
