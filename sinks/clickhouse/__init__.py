"""ClickHouse access: connections, table definitions derived from ``schemas``, columnar inserts."""
