"""Who a job belongs to: the name rule shared by the request's `owner`, the users file and the library's
index (an owner's name is also a part of object names there, so it is kept to letters, digits, `.`, `_`, `-`)."""

from __future__ import annotations

import re

from sora_extend.errors import InputError

OWNER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
ALLOWED = "1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'"


def check_owner(field: str, name: str) -> str:
    """`name` when it is a usable owner name, else an InputError naming `field`."""
    if not OWNER_NAME.fullmatch(name):
        raise InputError(field, f"'{name}' is not a user name", ALLOWED)
    return name
