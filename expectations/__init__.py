"""Bordin data-quality gate: Great Expectations suites over the marts."""
