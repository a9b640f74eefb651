"""Configuration: one typed settings object (``config.settings``) every floor may import; it imports no project code."""
