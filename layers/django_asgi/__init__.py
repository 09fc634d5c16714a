"""django_asgi: the contract on Django's ASGI handler -- async views, and every sync part run through sync_to_async."""
