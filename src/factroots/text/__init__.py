"""Pure text functions (no pyspark, no torch): cleaning, segmentation, normalisation, matching."""
