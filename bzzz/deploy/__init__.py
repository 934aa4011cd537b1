"""An adapter: deploying BZZZ to machines over SSH (asyncssh, host keys checked against
known_hosts), the wheel and its dependencies built here to copy over, the deployment's
state file, and finding machines (a hosts file, mDNS)."""
