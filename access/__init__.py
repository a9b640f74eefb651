"""API keys: roles and grants (``access.auth``) and the key registry (``access.keys``). Imports no project code."""
