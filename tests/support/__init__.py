"""Helpers for tests: the throwaway PostgreSQL cluster and databases cloned from a template."""
