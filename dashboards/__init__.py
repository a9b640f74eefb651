"""Web pages on live data: the admin dashboard and the student page (PRODUCT.md §11)."""
