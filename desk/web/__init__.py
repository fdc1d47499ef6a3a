"""The web layer: JSON API, sockets and pages."""

from desk.web import convertors as _convertors  # noqa: F401  (registers {id:hexid} before any route is built)
