"""Outbound calls: one pipeline for every adapter operation (DESIGN §4).

``pipeline.execute_call`` runs one attempt: resolve the integration
(``integrations``) -> validate -> idempotency -> cache (``cache``) -> quota
(``quotas``) -> breaker (``breaker``) -> auth (``auth/``) -> the request over the
pooled, SSRF-guarded session (``http``) -> transform -> audit (``audit``) ->
events; ``retry`` decides what a failure means. ``probe`` sends an integration's
health request outside the pipeline.
"""
