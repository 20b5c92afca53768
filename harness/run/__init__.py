"""run: the engine. ``profile`` (+ ``profiles/*.toml``) says what to ask and how to judge, ``runner`` captures
an endpoint stage by stage and evaluates every check (``run_target``, ``evaluate``, capture bundles), ``probes`` and
``robustness`` send the extra requests (bad requests, CORS, auth, rate limit; timing repeats, parallel and dropped
streams) described by ``harness.checks.catalog``.
"""
