"""The peer of `engage bench processors`: the same per-user job written with Quix Streams, in its own venv."""
