"""Stage 2: probe a masked LM on mLAMA (`queries`, `predictions`) and its neurons
(`signatures`, `overlap`). Imports torch and transformers; never pyspark."""
