"""Loadable examples (``s3vl example ...``)."""
