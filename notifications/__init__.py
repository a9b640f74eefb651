"""Notification delivery: the channels that reach a student (e-mail, push, SMS, in-app), each behind one small
provider interface (``channels/base.py``), the retries and circuit breakers around every provider
(``resilience.py``) and the choice of channel with fallback (``routing.py``).

Floors: imports ``schemas/``, ``config/`` and ``processors/``; nothing below imports it.
"""
