"""Outbound webhooks to subscribers (DESIGN §5).

``subscriptions`` (who wants which events, with which secret), ``sending`` (one
signed POST of one event to one subscriber, its retries, throttling and
dead-lettering) and ``standard_webhooks`` (the signing scheme).
"""
