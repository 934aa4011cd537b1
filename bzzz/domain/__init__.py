"""Pure rules of BZZZ: no I/O, no clocks, no asyncio. Every function here is a function of
its inputs, so the tests need no network and no disk."""
