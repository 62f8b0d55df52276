"""The one exception type the CLI turns into a clean message instead of a traceback."""


class GozError(Exception):
    """A user-facing error: bad input, missing data, unreachable asset. The message says what and where."""


class StoreError(GozError):
    """A feature store that is missing, unreadable or not in the GOZ layout."""


class SplitError(GozError):
    """A split file that is missing, malformed or unsafe."""


class FetchError(GozError):
    """An asset that could not be fetched or failed its checksum."""
