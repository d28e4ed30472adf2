"""The shard format, where shards come from (folder, HTTP, registry revision), and the one
verification every reader goes through."""
