"""The HTTP collector: web and mobile clients POST batches of events here."""
