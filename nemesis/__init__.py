"""The nemesis: N real `bzzz agent` daemons in network namespaces under a workload,
while a seeded schedule partitions, kills, pauses, shifts clocks, fills a disk and slows
links; then it heals, waits for the cluster to settle and checks every property BZZZ
promises. Test infrastructure (it needs root, iproute2 and `tests.support`), not part of
the product.

    python -m nemesis --seed 7 --minutes 2 --nodes 3

`schedule` makes the faults from a seed (pure), `cluster` builds the nodes, `executor`
applies the faults, `workload` is the clients, `checks` judges, `run` ties them.
"""
