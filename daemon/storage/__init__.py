"""Storage room: archive files and the index database (engine, schema, migrations, read queries, longitudinal writes)."""
