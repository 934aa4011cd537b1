"""The node home: identity keys, config.yaml and the default store location."""
