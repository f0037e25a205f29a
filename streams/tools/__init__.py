"""Operator tools: the CLI, the demo, replays, importers and the benchmark harness."""
