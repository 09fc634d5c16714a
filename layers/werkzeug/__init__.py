"""werkzeug: the contract on Werkzeug's Request/Response wrappers, routing.Map and HTTP exceptions."""
