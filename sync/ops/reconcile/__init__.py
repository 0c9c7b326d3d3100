"""``s3vl reconcile``: scan the index (:mod:`.scan`) -> classify in SQL (:mod:`.classify`) -> report
(:mod:`.report`) -> repair, orchestrated by :mod:`.run`."""
