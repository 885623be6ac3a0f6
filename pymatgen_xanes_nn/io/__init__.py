"""Input and output: spectrum files, the packed task documents and their shards, output document schemas."""
