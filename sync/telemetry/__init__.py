"""Observability: structured logs (:mod:`.logs`), Prometheus metrics (:mod:`.metrics`), CloudWatch EMF (:mod:`.emf`)."""
