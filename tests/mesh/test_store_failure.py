"""A node whose disk fills while a peer sends it entries drops the link, says why, and
links again once there is room: its dial loop never dies of a store error (found by the
nemesis: `Dialer._dial_loop` used to end on a StoreError)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.agents import Agent, converged, found, join, stop_all, wait_for

pytestmark = pytest.mark.slow


def _tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def test_a_full_disk_drops_the_link_and_the_node_links_again(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    _tmpfs(disk, "64m")
    agents: list[Agent] = []
    try:
        founder = found(tmp_path)
        agents.append(founder.start())
        # The joiner lives on the small disk and announces an address nobody listens
        # on, so after a restart of the founder only the joiner can link them again.
        node = join(disk, "small", founder)
        node.env = {"BZZZ_MESH_ADVERTISE": "127.0.0.1:9"}
        agents.append(node.start())
        wait_for(lambda: len(node.connected()) == 1, what="the joiner linked")
        wait_for(lambda: converged(agents), what="the logs to settle")

        filler = disk / "filler"
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"], capture_output=True
        )
        for n in range(40):
            founder.append(text=f"while the disk is full {n}", pad="x" * 4000)
        wait_for(lambda: "disk is full" in node.log_text(), timeout=30, what="the store to fail")
        filler.unlink()
        # A restarted founder knows only the bogus announced address: the link comes
        # back only if the joiner's dial loop outlived its store's failure.
        founder.stop()
        founder.start()
        wait_for(lambda: len(node.connected()) == 1, timeout=30, what="the joiner to dial again")
        wait_for(lambda: converged(agents), timeout=30, what="the logs after the disk freed")
        assert "our store failed" in node.log_text()  # the link was dropped, and why
        assert "Task exception was never retrieved" not in node.log_text()
    finally:
        stop_all(agents)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
