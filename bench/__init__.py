"""Benchmarks of the staff admin at scale (not part of the installed package). See bench/README.md."""
