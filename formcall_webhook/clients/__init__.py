"""Outgoing clients: one shared transport (http), signed outcome webhooks (outgoing), HubSpot's CRM (hubspot).

Each client is pure build/parse functions over `http.send`; they import only `errors` and each other.
"""
