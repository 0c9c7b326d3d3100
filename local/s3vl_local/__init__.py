"""The local stack: a private PostgreSQL cluster and one local AWS endpoint process."""
