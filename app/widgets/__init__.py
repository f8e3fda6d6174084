"""Panels and dialogs that mirror state (:mod:`app.state`); each in its own module."""
