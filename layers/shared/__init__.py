"""What all six layers share: the SQLite store, the hand-written validator (for the
layers below FastAPI), the JSON-safe view of an environ or scope, and the index page.
None of it is framework machinery, so sharing it keeps the work equal without letting a
lower layer borrow a higher layer's tools."""
