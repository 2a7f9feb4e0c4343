"""Stage 1, Spark: Wikipedia dumps -> pages -> sentences -> mentions -> cooccurrence."""
