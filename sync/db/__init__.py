"""The database side: connections and error translation (:mod:`.connection`), named queries
(:mod:`.queries`, from ``sql/queries/``) and the schema installer (:mod:`.schema`)."""
