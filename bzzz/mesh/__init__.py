"""The mesh: SSH transport between members, replication of logs, discovery, presence."""
