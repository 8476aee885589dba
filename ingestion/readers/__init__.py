"""Readers turn one delivered file into a table of raw text cells, or say why they cannot."""
