"""Errors for people: every one carries a single line that says what is wrong and what to do."""


class SaveexportError(Exception):
    """Base class; str(error) is the one line shown to the user."""


class UsageError(SaveexportError):
    """A bad option or argument."""


class EngineUnavailable(SaveexportError):
    """No container engine answers at the endpoint."""


class EngineIncompatible(EngineUnavailable):
    """An engine answers, but no API version is spoken by both it and this client."""


class SubjectUnavailable(SaveexportError):
    """The subject image can be neither found, pulled nor built."""


class ArchiveError(SaveexportError):
    """An archive is malformed or not of the kind expected."""
