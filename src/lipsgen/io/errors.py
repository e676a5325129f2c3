"""The error raised for event files that are unreadable or not laid out as lipsgen expects."""


class EventFileError(ValueError):
    """An event file is unreadable, corrupt, or not laid out as lipsgen expects."""
