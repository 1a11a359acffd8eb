"""What every domain of the hub stands on; imports nothing else of ``hub``.

Settings (``config``), the database (``db``, ``models``, ``migrate``), the error
hierarchy (``errors``), secrets (``vault``, ``redaction``), observability
(``logs``, ``metrics``, ``events``), how work is enqueued (``dispatch``,
``scheduler`` for waits kept in PostgreSQL, ``deadletters`` for work that ran out
of retries), the per-process bundle of clients (``services``), the intake's group
commit (``groupcommit``) and the parsed view of a stored webhook event (``inbound``).
"""
