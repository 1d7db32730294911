"""The users file of `sora-extend serve --users FILE`: one `name:bcrypt-hash[:admin]` a line (`#` starts a
comment), written by `sora-extend users add NAME`. Only bcrypt hashes are stored, never a password."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bcrypt
from pydantic import BaseModel

from sora_extend.errors import InputError
from sora_extend.owners import check_owner

MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further: a longer password would be cut without a word


class User(BaseModel):
    name: str
    password_hash: str
    admin: bool = False

    def line(self) -> str:
        return f"{self.name}:{self.password_hash}" + (":admin" if self.admin else "")


def hash_password(password: str) -> str:
    size = len(password.encode("utf-8"))
    if not MIN_PASSWORD_BYTES <= size <= MAX_PASSWORD_BYTES:
        raise InputError("password", f"is {size} bytes long", f"{MIN_PASSWORD_BYTES}-{MAX_PASSWORD_BYTES} bytes")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def password_matches(user: User, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), user.password_hash.encode("ascii"))
    except ValueError:  # a password longer than bcrypt takes
        return False


def _parse(line: str, where: str) -> User:
    name, _, rest = line.partition(":")
    password_hash, _, flag = rest.partition(":")
    check_owner(where, name)
    if not password_hash.startswith(("$2a$", "$2b$", "$2y$")) or len(password_hash) != 60:
        raise InputError(where, f"the password of '{name}' is not a bcrypt hash", "name:bcrypt-hash[:admin]")
    if flag not in ("", "admin"):
        raise InputError(where, f"'{flag}' after the hash of '{name}' is not a role", "admin, or nothing")
    return User(name=name, password_hash=password_hash, admin=flag == "admin")


def load_users(path: Path) -> dict[str, User]:
    """The users of a file, by name; InputError naming the file and line of the first problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            "users", f"{path} cannot be read ({exc})", "a users file written by `sora-extend users add`"
        ) from None
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user = _parse(line, f"users: {path} line {number}")
        if user.name in users:
            raise InputError(f"users: {path} line {number}", f"'{user.name}' is listed twice")
        users[user.name] = user
    if not users:
        raise InputError("users", f"{path} lists nobody", "one name:bcrypt-hash[:admin] a line")
    return users


def add_user(path: Path, name: str, password: str, admin: bool) -> bool:
    """Add `name` to the file (created if missing), or replace its line; True when it was already there.
    The file is replaced atomically and readable by its owner only."""
    check_owner("name", name)
    users = load_users(path) if path.exists() and path.read_text(encoding="utf-8").strip() else {}
    existed = name in users
    users[name] = User(name=name, password_hash=hash_password(password), admin=admin)
    text = "".join(user.line() + "\n" for user in users.values())
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:  # mkstemp creates it 0600
        out.write(text)
    os.replace(temp, path)
    return existed
