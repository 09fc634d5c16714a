"""fastapi: the contract on FastAPI -- pydantic models, Depends(get_store), and /docs for free."""
