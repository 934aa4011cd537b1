"""The `bzzz` command line: parse, call, render. No rules live here."""
