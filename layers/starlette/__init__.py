"""starlette: the contract on Starlette -- Request/Response classes, Router, lifespan with app.state."""
