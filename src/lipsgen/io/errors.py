"""The error raised for event files that are unreadable or not laid out as lipsgen expects."""


from ..errors import LipsgenError


class EventFileError(LipsgenError, ValueError):
    """An event file is unreadable, corrupt, or not laid out as lipsgen expects."""
