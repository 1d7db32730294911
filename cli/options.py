"""The request options of `run`, `plan` and `estimate`, derived from `ExtendRequest`'s fields, so the
command line, the UI form and the API accept exactly the same things with the same descriptions."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any

from pydantic.fields import FieldInfo

from sora_extend.commands import PER_RUN, REPEATED, flag
from sora_extend.request import ExtendRequest


def _plain(annotation: Any) -> Any:
    """The annotation without `| None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _help(info: FieldInfo) -> str:
    return (info.description or info.title or "").replace("%", "%%")


def add_request_options(parser: argparse.ArgumentParser, *, run: bool = False) -> None:
    """`prompt` as the positional argument, every other request field as an option (default: unset)."""
    parser.add_argument("prompt", help=_help(ExtendRequest.model_fields["prompt"]))
    for name, info in ExtendRequest.model_fields.items():
        if name == "prompt" or (name in PER_RUN and not run):
            continue
        kind = _plain(info.annotation)
        options: dict[str, Any] = {"dest": name, "default": None, "help": _help(info)}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is list:
            item = typing.get_args(kind)[0]
            item = typing.get_args(item)[0] if typing.get_origin(item) is typing.Annotated else item
            options |= {"type": item if item in (int, float) else str}
            options |= {"action": "append"} if name in REPEATED else {"nargs": "+"}
        elif typing.get_origin(kind) is typing.Literal:
            options["metavar"] = "{" + ",".join(str(value) for value in typing.get_args(kind)) + "}"
        elif kind in (int, float):
            options["type"] = kind
        parser.add_argument(flag(name), **options)


def request_from(args: argparse.Namespace, **extra: Any) -> ExtendRequest:
    """The request the options describe; validation errors name the field and the allowed values."""
    values = {name: getattr(args, name) for name in ExtendRequest.model_fields if getattr(args, name, None) is not None}
    return ExtendRequest(**(values | extra))
