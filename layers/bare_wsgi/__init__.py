"""bare_wsgi: the contract as one PEP 3333 callable written by hand, on the standard library alone."""
