"""The lake sink: Avro files in ADLS Gen2, one area per kind of row (docs/architecture.md)."""
