"""A small typed client of UCXI, a node's HTTP API of shared context, sync and async.

    from bzzz.client import UcxiClient

    with UcxiClient("http://127.0.0.1:9470", token_file="~/.bzzz/ucxi.token") as ucxi:
        version = ucxi.resolve("ucxl://4f2a:architect@demo:api/~latest/decisions/api.md")
        print(version.author_name, version.text)
        for found in ucxi.search("ucxl://*:*@demo:*/~latest").found:
            print(found.address)

`AsyncUcxiClient` has the same methods, awaited. Errors are `bzzz.errors.UcxiError`
(`status`: the HTTP status, 0 when the server could not be reached), whose message is
the server's own. Mutual TLS: `cert=(CERT, KEY)` and `verify=CA_FILE`."""

from bzzz.client.calls import Found, History, Version, Written
from bzzz.client.clients import AsyncUcxiClient, UcxiClient

__all__ = ["AsyncUcxiClient", "Found", "History", "UcxiClient", "Version", "Written"]
