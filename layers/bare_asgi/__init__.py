"""bare_asgi: the contract as an ASGI application written by hand, with no framework."""
