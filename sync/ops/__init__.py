"""Operations beside the data path: reconcile (:mod:`.reconcile`), reindex and status."""
