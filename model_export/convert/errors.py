"""The one exception of the converter: what is wrong, in one line, for the user to fix."""

from __future__ import annotations


class ConvertError(Exception):
    """The model cannot be converted as asked; nothing has been written."""
