"""``s3vl demo``: the whole job end to end on the local stack (:mod:`.run`) over a generated catalogue."""
