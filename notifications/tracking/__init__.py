"""Tracking back: signed links and pixels that turn a student's open, click, unsubscribe or a provider's delivery
report into events and intervention outcomes (``links``: the tokens; ``keys``: where their secret comes from)."""
