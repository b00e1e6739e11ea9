"""Transports that deliver rendered messages: one module per variant (outbox, smtp, sendgrid, memory).

``base.Transport`` owns the contract; ``get_transport`` picks one by name from the settings.
"""
