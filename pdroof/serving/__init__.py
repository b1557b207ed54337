"""Serving: workloads, one stage's evaluation (``stage``), the ``estimate`` report, what targets
mean under load, the KV handoff, the design space and its evaluation, ranking, the PD boundary
(``plan``) and deployments (``check``). Imports the cost model and the spec layer."""
