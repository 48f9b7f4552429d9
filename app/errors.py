"""The one error type the core raises: a value that is not acceptable, named by its field.

The core (nn, data, training, worker, sessions, control) speaks no HTTP: an error carries a
`code` (catalog key "error.<code>") and `params`, and the web layer maps the code to a
status (app/routes/errors.py). A code the table does not name is a 422: a bad value.
"""

from __future__ import annotations


class FieldError(ValueError):
    """`field` is a dotted path ("hidden_layers.0.units"); `message` is English for API
    clients; `code` and `params` let the page say the same in the reader's language."""

    def __init__(self, field: str, message: str, *, code: str | None = None, **params):
        super().__init__(message)
        self.field, self.message = field, message
        self.code, self.params = code, params

    def renamed(self, field: str) -> FieldError:
        """The same error under another field name (a body field instead of a path part)."""
        return FieldError(field, self.message, code=self.code, **self.params)
