"""`sora-extend`: the command line.

`run` starts the Prefect flow (when no Prefect API is configured, on the local Prefect server that the first
run starts and keeps in the background: `prefect status|stop`) and `bootstrap` sets up a Prefect server;
`serve` serves the job storage to browsers; every other command works without Prefect and returns at once.
Whatever can be checked without a server (settings, keys, storage, paths, numbers) is checked before Prefect
starts. Exit codes: 0 done, 1 the run failed (everything finished so far stays in storage), 2 bad input
(nothing was spent), each with one `error:` line per problem and no traceback.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import getpass
import ipaddress
import json
import logging
import math
import os
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import AliasChoices, SecretStr, ValidationError

from cli.options import add_request_options, request_from
from sora_extend import layout
from sora_extend.catalogue import PROVIDERS, MusicModelSpec
from sora_extend.errors import BudgetExceededError, InputError, MediaError
from sora_extend.library.remake import PrefectApi
from sora_extend.request import ExtendRequest, allowed_values, explain, normalise_storage_url
from sora_extend.settings import API_KEYS, MAX_RETENTION_DAYS, Settings, get_settings, missing_keys
from sora_extend.storage.retention import purge_outputs
from sora_extend.storage.store import JobStore, check_storage, open_filesystem, unwritable
from sora_extend.web.users import add_user, load_users

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
MAX_SIDE = 8192  # pixels: --size beyond this is a typo, not a video
MAX_GUARD = 240  # frames: ten seconds at 24 fps


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one `error:` line, exit 2 (not a usage block)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _number(kind: Callable[[str], float], low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number of `kind` within [low, high] ((low, high] with low_open)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if kind is int else ''}number") from None
        inside = (value > low if low_open else value >= low) and value <= high
        if not math.isfinite(value) or not inside:
            span = f"more than {low:g} and at most {high:g}" if low_open else f"{low:g}-{high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (allowed: {span})")
        return value

    return parse


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"'{text}' is out of range (allowed: 1-{MAX_SIDE} pixels a side)")
    return width, height


def _output_file(text: str) -> Path:
    """A file the command may write: not a folder, in a folder that exists (or can be made) and is writable."""
    target = Path(text).expanduser()
    if not text.strip() or target.is_dir():
        raise argparse.ArgumentTypeError(f"'{text}' is a folder, not a file path such as ./video.mp4")
    problem = unwritable(target.parent)
    if problem:
        raise argparse.ArgumentTypeError(f"'{text}' cannot be written: {problem}")
    return target


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _fail(lines: Sequence[str], code: int = EXIT_BAD_INPUT) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return code


def _env_name(field: str) -> str:
    """The environment variable that sets a setting."""
    info = Settings.model_fields.get(field.split(".")[0])
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"SORA_EXTEND_{field.split('.')[0].upper()}"


def _prefect_environment() -> None:
    """Before Prefect is imported: no telemetry (server or client: the client's first-use notice would also
    land in the middle of the progress view), and time for a first start of the embedded server (its
    database migrations took over Prefect's default 20 s on a 2-core machine)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _check_prefect_server(given: str | None = None) -> str | None:
    """`given` or PREFECT_API_URL, once it answers; None when unset (the embedded server is started instead)."""
    url = (given or os.environ.get("PREFECT_API_URL", "")).strip()
    if not url:
        return None
    import httpx

    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise InputError(
            "PREFECT_API_URL",
            f"{url} does not answer ({type(exc).__name__}: {exc})",
            "a running Prefect server's API such as http://127.0.0.1:4200/api (`make ui`), or unset for the "
            "embedded server",
        ) from None
    return url


def _check_keys(request: ExtendRequest, settings: Settings, api_url: str | None) -> None:
    """Every API key the request needs, before Prefect starts: from the environment, or (with a Prefect
    server) from its Secret blocks."""
    missing = missing_keys(request, settings)
    if not missing:
        return
    if api_url is not None:
        _prefect_environment()
        from tasks.secrets import settings_with_keys

        settings_with_keys(request, settings)  # asks the server's Secret blocks; MissingKeyError names the key
        return
    name, needed_for = missing[0]
    env_var, block = API_KEYS[name]
    raise InputError(
        env_var,
        f"{needed_for} needs an API key and none was found. Export {env_var}=... (or set PREFECT_API_URL to a "
        f"Prefect server that holds it in a Secret block named '{block}')",
    )


def _storage_of(request_storage: str | None, settings: Settings) -> str:
    """The storage URL a command uses, checked (protocol, bucket, reachable, writable) before anything starts."""
    url = request_storage or settings.storage
    if settings.aws_credentials_block:  # the S3 keys are in a Prefect Secret block: reachability is the flow's
        return normalise_storage_url(url)
    return check_storage(url, settings)


def _owner(args: argparse.Namespace, settings: Settings) -> str | None:
    """Whose video a run makes: --owner, else SORA_EXTEND_OWNER, else the system user."""
    if args.owner is not None or settings.owner:
        return str(args.owner or settings.owner)
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor in the password database
        return None


def cmd_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    request = request_from(args, owner=_owner(args, settings))
    from sora_extend.pipeline.budget import check_estimate
    from sora_extend.pipeline.job import Job, job_ref
    from sora_extend.pipeline.references import checked_references
    from sora_extend.pipeline.takes import check_picks

    check_estimate(request)  # before Prefect starts: a refusal costs nothing and returns at once
    storage = _storage_of(request.storage, settings)
    checked_references(request, settings)  # readable images of a kind and size the model takes
    check_picks(Job(job_ref(request, settings), settings))  # takes picked by hand exist
    _check_keys(request, settings, _check_prefect_server())
    from sora_extend.comfyui.preflight import check_servers

    check_servers(request, settings)  # ComfyUI: every server answers and has every node and model file
    _prefect_environment()
    from cli.prefect_server import use_local_server

    use_local_server(settings)  # no Prefect API configured: the local background server (started if need be)
    from cli.progress import progress_view
    from flows.extend import extend_video
    from tasks.secrets import storage_settings

    with progress_view(request, verbose=args.verbose):
        state = extend_video(request=request, return_state=True)
    store = JobStore(storage, request.job_id(), storage_settings(settings))
    review = _review_line(store)
    if not state.is_completed():
        try:
            state.result()
        except (InputError, BudgetExceededError) as exc:
            return _fail(explain(exc))
        except Exception as exc:
            if review:
                print(review)
            return _fail(
                [
                    f"the run failed: {exc}",
                    "finished segments are kept; run the same command again to resume",
                ],
                EXIT_FAILED,
            )
        return _fail([f"the run ended {state.type.value.lower()}"], EXIT_FAILED)
    result = state.result()
    print(
        f"done: {result.duration:.2f} s, {result.segments} segments, {result.merge}, total cost ${result.cost_usd:.2f}"
    )
    link = store.link(layout.FINAL, settings.link_ttl_s)  # fresh: a presigned link starts its lifetime now
    if link != store.path(layout.FINAL):  # a link to a server: say where the file is too
        print(f"video file: {result.video_url}")
    if review:
        print(review)
    print(f"manifest: {result.manifest_url}")
    if args.out:
        _copy_out(result.video_url, args.out)
        print(f"copied to: {args.out.resolve()}")
    print(link)
    return EXIT_OK


def _review_line(store: JobStore) -> str:
    """Where the job's review page (and its library card) opens, or how to make it open."""
    from sora_extend.library.query import card_link
    from sora_extend.pipeline.review_page import review_link

    if not store.exists(layout.REVIEW_PAGE):
        return ""
    link = review_link(store)
    card = card_link(store.public_url, store.job_id)
    if link:
        return f"review: {link}" + (f"\nlibrary: {card}" if card else "")
    return (
        f"review: run `sora-extend serve --storage {store.storage_url}` and set SORA_EXTEND_PUBLIC_URL to its "
        f"address to open {store.job_id}/{layout.REVIEW_PAGE}"
    )


def _copy_out(url: str, target: Path) -> None:
    fs, path = open_filesystem(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    fs.get_file(path, str(target))


def cmd_plan(args: argparse.Namespace) -> int:
    from sora_extend.planners import get_planner

    request = request_from(args)
    plan = get_planner(request.planner).plan(request)
    if args.json:
        print(plan.model_dump_json(indent=2))
        return EXIT_OK
    print(f"{plan.title}  [{plan.planner}, {plan.language}, {len(plan.shots)} x {request.seconds} s]")
    for shot in plan.shots:
        print(f"\n{shot.index:>2}. ({shot.transition_in}) {shot.prompt}")
    for still in plan.stills:
        print(f"\nkeyframe {still.index}: {still.prompt}")
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace) -> int:
    from sora_extend.pipeline.budget import check_estimate, estimate
    from sora_extend.pricing import price_book_for

    request = request_from(args)
    prices = price_book_for(request, get_settings())  # fal's live prices when FAL_KEY is set
    for line in estimate(request, prices).lines():
        print(line)
    check_estimate(request, prices=prices)
    return EXIT_OK


def cmd_frame(args: argparse.Namespace) -> int:
    from sora_extend.media.frames import last_frames
    from sora_extend.media.images import encode_png, fit_to_size
    from sora_extend.pipeline.handoff import choose_frame

    frames = last_frames(Path(args.video), args.guard or 1)
    chosen = choose_frame(frames)[0] if args.guard else frames[-1]
    rgb = fit_to_size(chosen.rgb, *args.size) if args.size else chosen.rgb
    Path(args.output).write_bytes(encode_png(rgb))
    print(
        f"{args.output}: {rgb.shape[1]}x{rgb.shape[0]}, frame at {chosen.time:.3f} s"
        + (f" ({chosen.from_end} before the last)" if chosen.from_end else " (the last frame)")
    )
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    from sora_extend.media.merge import JoinPlan, SoundPlan, merge_videos
    from sora_extend.soundtrack_choice import checked_loudness

    videos = [Path(video) for video in args.videos]
    joins = [
        JoinPlan(
            transition=args.transition,
            crossfade_s=args.crossfade if args.transition == "crossfade" else 0,
            dedupe_first_frame=args.dedupe,
        )
        for _ in videos[1:]
    ]
    target = checked_loudness(args.loudness)
    sound = SoundPlan(loudness_lufs=None if target == "off" else target)
    result = merge_videos(videos, Path(args.output), joins, sound=sound)
    print(
        f"{args.output}: {result.duration:.3f} s, {result.frames} frames, {result.method}"
        + (f" ({result.reason})" if result.reason else "")
        + f" in {result.seconds:.2f} s"
    )
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from sora_extend.catalogue import load_catalogue

    catalogue = load_catalogue()
    rows = []
    for spec in catalogue.models.values():
        if spec.status == "retired" and not args.all:
            continue
        durations = spec.duration.values
        span = f"{durations[0]}-{durations[-1]}" if len(durations) > 3 else ",".join(map(str, durations))
        price = f"${spec.price.per_second:.3f}"
        if spec.price.per_second_audio is not None:
            price += f" / ${spec.price.per_second_audio:.3f} audio"
        rows.append(
            (
                spec.provider,
                spec.id + (" (retired)" if spec.status == "retired" else ""),
                span,
                ",".join(spec.aspects),
                ",".join(spec.resolutions),
                price,
                spec.family,
            )
        )
    if args.json:
        print(json.dumps([spec.model_dump(mode="json") for spec in catalogue.models.values()], indent=2))
        return EXIT_OK
    header = ("provider", "model", "seconds", "aspects", "resolutions", "USD/s", "family")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    _print_music_models(catalogue.music.values())
    if not args.all:
        print("\n(retired models hidden; --all shows them)")
    return EXIT_OK


def _print_music_models(rows: Iterable[MusicModelSpec]) -> None:
    """The models --soundtrack score / score-only can use (--soundtrack-model)."""
    print("\nmusic models (--soundtrack score|score-only, --soundtrack-model ID):")
    for music in rows:
        per_track = music.price.per_audio
        price = f"${per_track:.2f} per track" if per_track is not None else f"${music.price.per_second:.4f}/s"
        lengths = f"{music.length.min_s:g}-{music.length.max_s:g} s"
        kind = music.mode.replace("_", "-")
        print(f"  {music.provider:<8} {music.id:<16} {kind:<15} {lengths:<10} {price:<16} {music.family}")


def cmd_purge(args: argparse.Namespace) -> int:
    settings = get_settings()
    storage = _storage_of(args.storage, settings)
    # Straight to storage: a purge needs no flow run (the purge-outputs deployment records its own). Prefect is
    # asked only for S3 keys kept in a Secret block.
    if settings.aws_credentials_block:
        _check_prefect_server()
        _prefect_environment()
        from tasks.secrets import storage_settings

        settings = storage_settings(settings)
    report = purge_outputs(storage, args.older_than_days, dry_run=args.dry_run, settings=settings)
    for line in report.lines():
        print(line)
    return EXIT_OK


def _loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's loopback."""
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(str(item[4][0]).split("%")[0]).is_loopback for item in found)


def _prefect_api(args: argparse.Namespace) -> PrefectApi | None:
    """The Prefect API `serve` starts 'make again' runs on, once it answers: --prefect-api (refused when it
    does not), else PREFECT_API_URL (set for other commands too: when it does not answer, the library only
    shows the commands); None when neither is given."""
    url = (args.prefect_api or os.environ.get("PREFECT_API_URL", "")).strip()
    if not url:
        return None
    try:
        _check_prefect_server(url)
    except InputError as exc:
        if args.prefect_api:
            raise
        print(f"make again: {exc.reason}")
        return None
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return PrefectApi(url=url.rstrip("/"), auth=SecretStr(auth) if auth else None)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.users is None and not args.public and not _loopback(args.host):
        raise InputError(
            "host",
            f"{args.host} is reachable from other machines, and without --users everyone there would see every job",
            "a loopback address (127.0.0.1, ::1, localhost), or --users FILE, or --public to mean it",
        )
    users = load_users(args.users) if args.users is not None else None
    storage = _storage_of(args.storage, settings)
    with socket.socket() as probe:  # a taken port or an unknown host is refused here, in one line
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise InputError("port", f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    prefect = _prefect_api(args)
    from sora_extend.web.media_server import serve

    host = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host  # all interfaces: name one
    address = f"http://{host}:{args.port}"
    if settings.public_url is None:
        print(f"links in new runs point here once SORA_EXTEND_PUBLIC_URL={address} is set where they run")
    print(f"sign-in: {f'{len(users)} user(s) from {args.users}' if users else 'off (everyone sees every job)'}")
    if prefect is None:
        print("make again: commands only (no Prefect API: --prefect-api URL or PREFECT_API_URL adds the button)")
    serve(storage, args.host, args.port, users=users, prefect=prefect)
    return EXIT_OK


def _new_password() -> str:
    """A password typed twice on a terminal, or the first line of standard input (scripts)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise InputError("password", "the two entries differ")
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    existed = add_user(args.users, args.name, _new_password(), args.admin)
    role = " (admin)" if args.admin else ""
    print(f"{'replaced' if existed else 'added'} {args.name}{role} in {args.users}")
    return EXIT_OK


def cmd_reindex(args: argparse.Namespace) -> int:
    from sora_extend.library.reindex import reindex

    settings = get_settings()
    for line in reindex(_storage_of(args.storage, settings), settings).lines():
        print(line)
    return EXIT_OK


def _limit(text: str) -> tuple[str, int]:
    provider, _, number = text.partition("=")
    if provider not in PROVIDERS or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not PROVIDER=N with PROVIDER one of {', '.join(PROVIDERS)} and N 1 or more"
        )
    return provider, int(number)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    _check_prefect_server()
    _prefect_environment()
    from deployments.bootstrap import bootstrap

    for line in bootstrap(
        args.pool, dict(args.limit or []), args.secrets_from_env, args.results_block, args.crash_after
    ):
        print(line)
    return EXIT_OK


def cmd_prefect(args: argparse.Namespace) -> int:
    """The local Prefect server that runs use when no Prefect API is configured (see cli/prefect_server.py)."""
    _prefect_environment()
    from cli.prefect_server import ServerUnavailable, manage

    try:
        running, line = manage(args.prefect_command, get_settings())
    except ServerUnavailable as exc:
        return _fail([exc.reason], EXIT_FAILED)
    print(line)
    return EXIT_OK if running or args.prefect_command == "stop" else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sora-extend", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="plan, render and merge a long video")
    add_request_options(run, run=True)
    run.add_argument("--out", type=_output_file, help="also copy the final video to this local file")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="Prefect's full log lines instead of the compact progress view"
    )
    run.set_defaults(handler=cmd_run)

    plan = commands.add_parser("plan", help="print the shot plan without rendering")
    add_request_options(plan)
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=cmd_plan)

    estimate = commands.add_parser("estimate", help="price a run before spending anything")
    add_request_options(estimate)
    estimate.set_defaults(handler=cmd_estimate)

    frame = commands.add_parser("frame", help="extract a video's hand-off frame as PNG")
    frame.add_argument("video")
    frame.add_argument("-o", "--output", required=True, type=_output_file)
    frame.add_argument("--size", type=_size, help="WIDTHxHEIGHT to scale and centre-crop to")
    frame.add_argument(
        "--guard",
        type=_number(int, 0, MAX_GUARD),
        default=0,
        metavar="N",
        help="pick the sharpest non-black of the last N frames instead of the last",
    )
    frame.set_defaults(handler=cmd_frame)

    merge = commands.add_parser("merge", help="join videos (stream copy when possible)")
    merge.add_argument("videos", nargs="+")
    merge.add_argument("-o", "--output", required=True, type=_output_file)
    merge.add_argument("--transition", default="cut", choices=["continuous", "crossfade", "cut"])
    merge.add_argument(
        "--crossfade",
        type=_number(float, 0, 2.0, low_open=True),
        default=0.5,
        help=f"seconds (allowed: {allowed_values('crossfade_seconds')})",
    )
    merge.add_argument(
        "--dedupe",
        action="store_true",
        help="each video starts with the previous one's last frame (show each copy for half a frame)",
    )
    merge.add_argument(
        "--loudness", default="-14", help=(ExtendRequest.model_fields["loudness"].description or "").replace("%", "%%")
    )
    merge.set_defaults(handler=cmd_merge)

    purge = commands.add_parser("purge", help="delete finished job folders older than N days")
    purge.add_argument("--storage", help="storage URL (default: SORA_EXTEND_STORAGE)")
    purge.add_argument(
        "--older-than-days",
        type=_number(float, 0, MAX_RETENTION_DAYS, low_open=True),
        help="default: SORA_EXTEND_RETENTION_DAYS (1)",
    )
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    purge.set_defaults(handler=cmd_purge)

    boot = commands.add_parser(
        "bootstrap", help="create the work pool, concurrency limits, recovery automations and blocks (idempotent)"
    )
    boot.add_argument("--pool", default="sora-extend", type=_name)
    boot.add_argument(
        "--limit",
        type=_limit,
        action="append",
        metavar="PROVIDER=N",
        help="segments rendering at once per provider (default preview=2 fal=4 openai=2)",
    )
    boot.add_argument(
        "--crash-after",
        type=_number(int, 1, 24 * 3600),
        default=90,
        metavar="SECONDS",
        help="mark a run Crashed (then resume it on another worker) after this long without a heartbeat",
    )
    boot.add_argument(
        "--secrets-from-env",
        action="store_true",
        help="save FAL_KEY, OPENAI_API_KEY and AWS keys found in the environment as Secret blocks",
    )
    boot.add_argument(
        "--results-block",
        action="store_true",
        help="save a RemoteFileSystem block next to S3 job storage for shared task results",
    )
    boot.set_defaults(handler=cmd_bootstrap)

    prefect = commands.add_parser(
        "prefect", help="the local Prefect server (UI and run history) that runs start and keep in the background"
    )
    prefect_commands = prefect.add_subparsers(dest="prefect_command", required=True)
    for name, text in (
        ("start", "start it now (runs start it when it is not running)"),
        ("status", "whether it runs, where, and where its output goes"),
        ("stop", "stop it (the next run starts it again)"),
    ):
        prefect_commands.add_parser(name, help=text).set_defaults(handler=cmd_prefect)

    serve = commands.add_parser("serve", help="serve the job storage to browsers (videos, review pages), read-only")
    serve.add_argument("--storage", help="storage URL (default: SORA_EXTEND_STORAGE)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=_number(int, 1, 65535), default=8765)
    serve.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help="sign-in: name:bcrypt-hash[:admin] a line (`sora-extend users add`); each person sees their own jobs",
    )
    serve.add_argument(
        "--public", action="store_true", help="listen beyond loopback without --users: everyone sees every job"
    )
    serve.add_argument(
        "--prefect-api",
        metavar="URL",
        help="Prefect API for the library's 'make again' button (default: PREFECT_API_URL; basic auth from "
        "PREFECT_API_AUTH_STRING)",
    )
    serve.set_defaults(handler=cmd_serve)

    users = commands.add_parser("users", help="the users file of `serve --users`")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="add a person (or set a new password); asks for the password")
    add.add_argument("name", help="1-64 letters, digits, '.', '_' or '-'")
    add.add_argument("--users", type=Path, default=Path("users.txt"), metavar="FILE", help="default: users.txt")
    add.add_argument("--admin", action="store_true", help="sees every person's jobs")
    add.set_defaults(handler=cmd_users_add)

    reindex = commands.add_parser("reindex", help="rebuild the library's index from the job folders")
    reindex.add_argument("--storage", help="storage URL (default: SORA_EXTEND_STORAGE)")
    reindex.set_defaults(handler=cmd_reindex)

    models = commands.add_parser("models", help="list providers and models with durations, sizes and prices")
    models.add_argument("--all", action="store_true", help="include retired models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=cmd_models)
    return parser


def _settings_problems() -> list[str]:
    """Every setting the environment (or .env) sets to something unusable, named by its variable."""
    try:
        get_settings()
    except ValidationError as exc:
        return explain(exc, Settings, _env_name)
    return []


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problems = _settings_problems()
    if problems:
        return _fail(problems)
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        return _fail(explain(exc))
    except (InputError, BudgetExceededError, MediaError) as exc:
        return _fail(explain(exc))


def run() -> None:
    """The `sora-extend` command: main(), then, once every exit handler has run (Prefect drains its event and
    log queues before them), the process ends without tearing its modules down (Prefect, pydantic, PyAV:
    that alone took a second after the last line). Whatever main() raises ends the process as usual."""
    returned: list[int] = []
    atexit.register(_end_now, returned)  # before Prefect is imported: atexit runs it after Prefect's handlers
    returned.append(main())
    sys.exit(returned[0])


def _end_now(returned: list[int]) -> None:
    if not returned:
        return
    logging.shutdown()  # registered before this handler, so it would run after it
    with contextlib.suppress(OSError):  # a closed pipe: nothing left to say
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(returned[0])


if __name__ == "__main__":
    run()
