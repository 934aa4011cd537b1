"""The Human Agent Portal (`bzzz hap`): the node's front end for a person, beside the
agent daemon's loop. It speaks to a node only through the node's control socket."""
