"""PASL: Pose Adapted Shape Learning for large-pose face reenactment (CVPR 2024).

A pure torch/numpy library: it never imports ComfyUI. Import the stage you need
(``pasl.aeg``, ...); importing ``pasl`` itself loads nothing heavy.
"""

__version__ = "0.1.0"
