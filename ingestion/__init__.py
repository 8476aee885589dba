"""Bordin ingestion: site exports in the inbox become events in the append-only event log."""
