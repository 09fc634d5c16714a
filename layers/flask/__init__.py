"""flask: the contract on Flask -- decorators, request and app contexts, g and teardown, error handlers."""
