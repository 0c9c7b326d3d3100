"""The data path, in the order data flows: capture (the wal2json reader) -> outbox (the queue
protocol) -> contract (keys, hashes, metadata of a vector) -> pipeline (one batch) -> worker (the loop)."""
