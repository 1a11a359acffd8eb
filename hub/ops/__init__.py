"""Operating the hub: what beat runs and what operators look at.

``dlq`` (list, show, replay and purge dead letters), ``guardrails`` (the
poison-message counter), ``healthchecks`` (beat's probes of every integration),
``health`` (readiness of PostgreSQL, Redis and the broker), ``retention``,
``maintenance`` (when each maintenance task last succeeded: beat's pulse),
``statemetrics`` and ``queues`` (what /metrics reads at scrape time).
"""
