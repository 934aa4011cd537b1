"""The keys step: the key service (`bzzz.services.keys`) built from a node's parts. Its
keyring opens role keys with the node's agent key, in memory only."""

from __future__ import annotations

from bzzz.home.node import Node
from bzzz.projections.keyring import Keyring
from bzzz.services.election import ElectionRunner
from bzzz.services.keys import KeyService
from bzzz.services.ports import Replica


def keys_of(node: Node, replica: Replica, election: ElectionRunner) -> KeyService:
    """The node's key service: every node folds and opens its keys; the admin grants
    them (`KeyService.set_admin`, from the admin duties)."""
    identity = node.identity
    keyring = Keyring(identity.public_key, identity.ssh_private_pem(), node.roles)
    return KeyService(replica, election, keyring)
