"""Notification logic without I/O: template contexts, the template catalogue and send-time optimisation."""
