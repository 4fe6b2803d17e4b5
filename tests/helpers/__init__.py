"""Test helpers: the synthetic plate generator (also the example plate's generator)."""
