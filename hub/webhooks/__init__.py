"""Inbound webhooks: intake (verify, record, enqueue) and processing of recorded events.

``hub.webhooks.intake`` is the hot path behind ``POST /api/v1/webhooks/<source>/<token>``;
``hub.webhooks.processing`` runs the ``hub.webhooks.process`` task on recorded events.
"""
