"""The database side: the schema installer (:mod:`.schema`)."""
