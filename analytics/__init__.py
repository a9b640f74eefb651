"""Named analyst queries over ClickHouse: SQL files with a header, run by ``engage query NAME``."""
