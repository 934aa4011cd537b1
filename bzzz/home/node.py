"""Opening and creating a node: the imperative shell around home, config and store."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from bzzz.clock import now_ms
from bzzz.domain.membership import FOUNDED, founded_body, founded_name
from bzzz.domain.payload import encode_payload
from bzzz.domain.roles import Roles
from bzzz.errors import ConfigError, one_line
from bzzz.home.config import CONFIG_FILE, NodeConfig, load_config, validate_config, write_config
from bzzz.home.keys import Identity, create_identity, identity_exists, load_identity
from bzzz.home.location import make_private_files, make_private_home, private_umask, sqlite_files
from bzzz.home.roles import load_roles
from bzzz.projections.membership import foundings
from bzzz.store import EventStore
from bzzz.store.urls import StoreUrl, resolve_store_url


@dataclass
class Node:
    home: Path
    config: NodeConfig
    identity: Identity
    store: EventStore
    roles: Roles

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def store_url_of(home: Path, config: NodeConfig) -> StoreUrl:
    return resolve_store_url(config.store.url, base=home)


def roles_of(home: Path, config: NodeConfig) -> Roles:
    return load_roles(home / config.project if config.project else None)


def init_node(
    home: Path,
    *,
    name: str,
    role: str,
    store_url: str | None = None,
    cluster: str | None = None,
    listen: str | None = None,
) -> Node:
    """Create a node home: keys (0600), config.yaml and the store. Refuses to replace an
    existing identity; leaves nothing half-made when the config is invalid. With
    `cluster`, this node founds it: the first entry of its log says so."""
    if identity_exists(home) or (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} is already a node home; refusing to overwrite its identity")
    raw = {"name": name, "role": role}
    if store_url is not None:
        raw["store"] = {"url": store_url}  # type: ignore[assignment]
    mesh = {k: v for k, v in (("cluster", cluster), ("listen", listen)) if v is not None}
    if mesh:
        raw["mesh"] = mesh  # type: ignore[assignment]
    config = validate_config(raw, "bzzz init")
    roles = roles_of(home, config)
    if role not in roles:
        raise ConfigError(f"no role named {role!r}; the roles are: {', '.join(roles.by_name)}")
    url = store_url_of(home, config)
    created = not home.exists()
    try:
        make_private_home(home)
        with private_umask():
            store = EventStore(url)
        if url.is_sqlite and url.url.database:
            make_private_files(sqlite_files(Path(url.url.database)))
    except BaseException as error:
        if created:
            shutil.rmtree(home, ignore_errors=True)
        if isinstance(error, OSError):
            raise ConfigError(f"cannot create the node home {home}: {one_line(error)}") from None
        raise
    identity = create_identity(home)
    if cluster is not None:
        body = encode_payload(founded_body(cluster, name, role))
        founding = store.append(identity.signer, FOUNDED, body, now_ms())
        mesh_config = config.mesh.model_copy(update={"cluster_id": founding.hash.hex()})
        config = config.model_copy(update={"mesh": mesh_config})
    write_config(home, config)
    return Node(home, config, identity, store, roles)


def open_config(home: Path) -> NodeConfig:
    if not home.is_dir():
        raise ConfigError(f"no node home at {home} (create one with `bzzz init --home {home}`)")
    return load_config(home)


def open_node(home: Path) -> Node:
    config = open_config(home)
    identity = load_identity(home)
    roles = roles_of(home, config)
    store = EventStore(store_url_of(home, config))
    try:
        config = _pin_cluster(home, config, store)
    except BaseException:
        store.close()
        raise
    return Node(home, config, identity, store, roles)


def cluster_id_of(config: NodeConfig) -> bytes | None:
    found = config.mesh.cluster_id
    return bytes.fromhex(found) if found else None


def _pin_cluster(home: Path, config: NodeConfig, store: EventStore) -> NodeConfig:
    """A home written before clusters had ids names its cluster by name only: pin the
    id of the one founding entry of that name in its store (refuse if there are
    several: one of them is forged, and only a person can tell which)."""
    name = config.mesh.cluster
    if name is None or config.mesh.cluster_id is not None:
        return config
    candidates = [e for e in foundings(store) if founded_name(e.body) == name]
    if len(candidates) != 1:
        raise ConfigError(
            f"{home / CONFIG_FILE} names cluster {name!r} but no mesh.cluster_id, and the "
            f"store holds {len(candidates)} founding entries of that name; set "
            "mesh.cluster_id to the hash of the true one (`bzzz log show --kind "
            "cluster.founded --json`)"
        )
    mesh_config = config.mesh.model_copy(update={"cluster_id": candidates[0].hash.hex()})
    config = config.model_copy(update={"mesh": mesh_config})
    write_config(home, config)
    return config


def open_home_store(home: Path) -> EventStore:
    """The store of a home, without its keys: enough to read and audit."""
    config = open_config(home)
    return EventStore(store_url_of(home, config), create=False)
