"""Training data: webdataset shard schemas, writers and readers (e.g. UV-texture shards for the texture GAN)."""
