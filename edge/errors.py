"""One error type for everything a user (or a file a user hands us) can get wrong.

The message is one clear sentence; the CLI turns it into a ``click.ClickException`` (exit 1, no
traceback). Code below the CLI raises ``EdgeError`` (or a subclass) and never calls ``sys.exit``.
"""


class EdgeError(Exception):
    """A problem the user can fix: bad config, bad file, missing key, refused bundle..."""


class ConfigError(EdgeError):
    """The config file is missing, unparsable, or has a bad value (the message names the key path)."""


def read_text(path, what: str = "file", max_bytes: int | None = None, encoding: str = "utf-8") -> str:
    """A small text file a user named, or one EdgeError sentence saying why it cannot be read."""
    from pathlib import Path

    path = Path(path)
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise EdgeError(f"{path} is too large to be a {what}")
        return path.read_text(encoding=encoding)
    except OSError as exc:
        raise EdgeError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise EdgeError(f"{path} is not a text {what}") from None
