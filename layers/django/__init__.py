"""django: the contract on Django's WSGI handler -- URLconf, class-based views, the handler chain, optional middleware."""
