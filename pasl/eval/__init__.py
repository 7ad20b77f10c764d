"""The paper's benchmarks: large-pose pair lists (:mod:`pasl.eval.pairs`), a resumable runner into the release's
evaluation folders (:mod:`pasl.eval.runner`), per-pair scores (:mod:`pasl.eval.scores`, also behind the PASL Metrics
node) and the table (:mod:`pasl.eval.report`), on the metric functions of :mod:`pasl.eval.metrics`.

Run ``python -m pasl.eval compose-pairs --help`` and ``python -m pasl.eval run --help``.
"""
