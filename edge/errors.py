"""One error type for everything a user (or a file a user hands us) can get wrong.

The message is one clear sentence; the CLI turns it into a ``click.ClickException`` (exit 1, no
traceback). Code below the CLI raises ``EdgeError`` (or a subclass) and never calls ``sys.exit``.
"""


class EdgeError(Exception):
    """A problem the user can fix: bad config, bad file, missing key, refused bundle..."""


class ConfigError(EdgeError):
    """The config file is missing, unparsable, or has a bad value (the message names the key path)."""
