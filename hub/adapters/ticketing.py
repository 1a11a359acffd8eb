"""MAX ticketing (seed 003 §1): support tickets in an external ticketing system.

The seed's REST shape, under the integration's base URL (e.g.
``https://tickets.example.com/api/v2``):

===================  ==============================  ===================================
operation            request                         answer (normalised)
===================  ==============================  ===================================
``create_ticket``    ``POST /tickets``               ``{ticket_id, url, status}``
``get_ticket_status`` ``GET /tickets/{ticket_id}``   ``{ticket_id, status, assigned_to,
                                                     last_updated}``, cached 5 minutes
``add_comment``      ``POST /tickets/{ticket_id}/    ``{comment_id}``
                     comments``
===================  ==============================  ===================================

``create_ticket`` sends ``{subject, description, priority, custom_fields:
{customer_id}}``; ``add_comment`` sends ``{body, public}``. Auth: ``api_key``
(``X-Api-Key``, the seed's default) or ``bearer``; neither is this module's business.
"""

from __future__ import annotations

from hub.adapters.base import Adapter, Operation
from hub.adapters.transform import closed_object

#: Seed 003: "@cached(ttl=300)".
STATUS_CACHE_SECONDS = 300
PRIORITIES = ("low", "normal", "high", "urgent")

_ID = {"type": ["string", "integer"], "minLength": 1, "maxLength": 128}



class TicketingAdapter(Adapter):
    name = "ticketing"
    health_path = "/tickets?limit=1"
    operations = (
        Operation(
            "create_ticket", method="POST", path="/tickets",
            params_schema=closed_object({
                "customer_id": _ID,
                "subject": {"type": "string", "minLength": 1, "maxLength": 500},
                "description": {"type": "string", "minLength": 1, "maxLength": 65536},
                "priority": {"enum": list(PRIORITIES)},
            }, ["customer_id", "subject", "description"]),
            request_map="{subject: subject, description: description, "
                        "priority: priority || 'normal', "
                        "custom_fields: {customer_id: customer_id}}",
            response_map="{ticket_id: id, url: url, status: status}",
            description="Open a support ticket for a customer."),
        Operation(
            "get_ticket_status", method="GET", path="/tickets/{ticket_id}",
            params_schema=closed_object({"ticket_id": _ID}, ["ticket_id"]),
            cacheable=True, cache_ttl=STATUS_CACHE_SECONDS,
            response_map="{ticket_id: id, status: status, assigned_to: assignee.email, "
                         "last_updated: updated_at}",
            description="A ticket's status and assignee (cached 5 minutes)."),
        Operation(
            "add_comment", method="POST", path="/tickets/{ticket_id}/comments",
            params_schema=closed_object({
                "ticket_id": _ID,
                "comment": {"type": "string", "minLength": 1, "maxLength": 65536},
                "is_public": {"type": "boolean"},
            }, ["ticket_id", "comment"]),
            request_map="{body: comment, public: is_public == null || is_public}",
            response_map="{comment_id: id}",
            description="Add a public (default) or internal comment to a ticket."),
    )
