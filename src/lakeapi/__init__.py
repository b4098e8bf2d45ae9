"""The platform's wire contract: what crosses HTTP between the services, the SDK and users.

Error codes and their HTTP statuses (:mod:`lakeapi.errors`), the naming rule
(:mod:`lakeapi.names`) and the records each resource answers with (:mod:`lakeapi.schemas`).
Imported by both services and by the SDK; it imports no server code.
"""
