"""The errors of the Odoo client, apart from it (no HTTP library here): `parse.py` raises
`OdooDataError` too, and it is imported when the code location loads, the client only when a
step runs."""


class OdooError(RuntimeError):
    """Something went wrong talking to Odoo; the message says what and what to fix."""


class OdooAuthError(OdooError):
    """The credentials were refused: wrong user or API key, an expired key, a lost session."""


class OdooAccessError(OdooError):
    """The user is authenticated but may not read a model (Odoo's AccessError)."""


class OdooConfigError(OdooError):
    """The configuration does not fit this server: unknown database, model or field, wrong URL."""


class OdooJson2Unavailable(OdooConfigError):
    """`/json/2` answered with something that is not Odoo's API: an unknown database (a real
    Odoo 19 answers its server-wide HTML 404), an older Odoo, or a proxy that blocks it."""

    def __init__(self, message: str, answer: str):
        super().__init__(message)
        self.answer = answer  # "HTTP 404 with an HTML page"


class OdooUnavailableError(OdooError):
    """Odoo could not be reached or kept failing after the retries: try again later."""


class OdooResponseError(OdooError):
    """Odoo (or something in front of it) answered with something that is not Odoo's API."""


class OdooDataError(OdooError, ValueError):
    """A record whose field cannot be read as its type; the message names record and field."""
