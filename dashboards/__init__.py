"""Web pages on live data (PRODUCT.md §11): the admin dashboard behind a login, and the student page.

``dashboards.app.create_app`` builds the Starlette app ``engage dashboards serve`` runs. Pages read the named
queries (``analytics``) and the worker's and desk's APIs; charts are inline SVG (``dashboards.charts``).
"""
