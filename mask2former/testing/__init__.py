"""Helpers for checking this package against its references, shared by the tests and the
benchmarks: a HuggingFace Mask2Former built with known weights (``transformers`` is a test-only
dependency, imported when used) and our state dicts in the official key layout. Nothing in the
package itself imports this."""
