"""Where state lives: the metadata database (SQLAlchemy, SQLite or PostgreSQL), run files and
snapshots (artifacts), and datastore files. Imports nothing from the layers above."""
