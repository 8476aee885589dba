"""Bordin warehouse: dbt builds, releases, and the `bordin` command."""
