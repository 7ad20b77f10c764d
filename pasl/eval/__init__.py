"""Benchmarks of issue 17, first part: metrics (:mod:`pasl.eval.metrics`) and test-pair lists (:mod:`pasl.eval.pairs`).

Run ``python -m pasl.eval compose-pairs --help`` for the pair-list command line.
"""
