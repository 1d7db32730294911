"""`sora-extend`: the command line.

`run` and `purge` start Prefect flows (on Prefect's embedded local server when PREFECT_API_URL is
unset); every other command works without Prefect and returns at once. Exit codes: 0 done,
1 the run failed (everything finished so far stays in storage), 2 bad input (nothing was spent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from cli.options import add_request_options, request_from
from sora_extend.errors import BudgetExceededError, InputError, MediaError
from sora_extend.request import explain

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTHxHEIGHT, e.g. 1280x720") from None
    return width, height


def _fail(lines: Sequence[str], code: int = EXIT_BAD_INPUT) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return code


def _prefect_environment() -> None:
    """Before Prefect is imported: no telemetry, and time for a first start of the embedded server (its
    database migrations took over Prefect's default 20 s on a 2-core machine)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def cmd_run(args: argparse.Namespace) -> int:
    request = request_from(args)
    from sora_extend.pipeline.budget import check_estimate

    check_estimate(request)  # before Prefect starts: a refusal costs nothing and returns at once
    _prefect_environment()
    from flows.extend import extend_video

    state = extend_video(request=request, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except (InputError, BudgetExceededError) as exc:
            return _fail(explain(exc))
        except Exception as exc:
            return _fail(
                [
                    f"the run failed: {exc}",
                    "finished segments are kept; run the same command again to resume",
                ],
                EXIT_FAILED,
            )
        return _fail([f"the run ended {state.type.value.lower()}"], EXIT_FAILED)
    result = state.result()
    print(f"video: {result.duration:.2f} s, {result.segments} segments, ${result.cost_usd:.2f}, {result.merge}")
    print(f"manifest: {result.manifest_url}")
    if args.out:
        _copy_out(result.video_url, Path(args.out))
        print(f"copied to: {Path(args.out).resolve()}")
    print(result.link)
    return EXIT_OK


def _copy_out(url: str, target: Path) -> None:
    from sora_extend.storage.store import open_filesystem

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
    from sora_extend.settings import get_settings

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
    from sora_extend.media.merge import JoinPlan, merge_videos

    videos = [Path(video) for video in args.videos]
    joins = [
        JoinPlan(
            transition=args.transition,
            crossfade_s=args.crossfade if args.transition == "crossfade" else 0,
            dedupe_first_frame=args.dedupe,
        )
        for _ in videos[1:]
    ]
    result = merge_videos(videos, Path(args.output), joins)
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
    if not args.all:
        print("\n(retired models hidden; --all shows them)")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    _prefect_environment()
    from flows.purge import purge_outputs_flow

    report = purge_outputs_flow(storage=args.storage, older_than_days=args.older_than_days, dry_run=args.dry_run)
    for line in report.lines():
        print(line)
    return EXIT_OK


def _limit(text: str) -> tuple[str, int]:
    provider, _, number = text.partition("=")
    if provider not in ("preview", "fal", "openai") or not number.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not PROVIDER=N with PROVIDER one of preview, fal, openai")
    return provider, int(number)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from deployments.bootstrap import bootstrap

    for line in bootstrap(args.pool, dict(args.limit or []), args.secrets_from_env, args.results_block):
        print(line)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sora-extend", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="plan, render and merge a long video")
    add_request_options(run, run=True)
    run.add_argument("--out", help="also copy the final video to this local file")
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
    frame.add_argument("-o", "--output", required=True)
    frame.add_argument("--size", type=_size, help="WIDTHxHEIGHT to scale and centre-crop to")
    frame.add_argument(
        "--guard",
        type=int,
        default=0,
        metavar="N",
        help="pick the sharpest non-black of the last N frames instead of the last",
    )
    frame.set_defaults(handler=cmd_frame)

    merge = commands.add_parser("merge", help="join videos (stream copy when possible)")
    merge.add_argument("videos", nargs="+")
    merge.add_argument("-o", "--output", required=True)
    merge.add_argument("--transition", default="cut", choices=["continuous", "crossfade", "cut"])
    merge.add_argument("--crossfade", type=float, default=0.5)
    merge.add_argument(
        "--dedupe",
        action="store_true",
        help="each video starts with the previous one's last frame (show each copy for half a frame)",
    )
    merge.set_defaults(handler=cmd_merge)

    purge = commands.add_parser("purge", help="delete finished job folders older than N days")
    purge.add_argument("--storage", help="storage URL (default: SORA_EXTEND_STORAGE)")
    purge.add_argument("--older-than-days", type=float, help="default: SORA_EXTEND_RETENTION_DAYS (1)")
    purge.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    purge.set_defaults(handler=cmd_purge)

    boot = commands.add_parser("bootstrap", help="create the work pool, concurrency limits and blocks (idempotent)")
    boot.add_argument("--pool", default="sora-extend")
    boot.add_argument(
        "--limit",
        type=_limit,
        action="append",
        metavar="PROVIDER=N",
        help="segments rendering at once per provider (default preview=2 fal=4 openai=2)",
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

    models = commands.add_parser("models", help="list providers and models with durations, sizes and prices")
    models.add_argument("--all", action="store_true", help="include retired models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        return _fail(explain(exc))
    except (InputError, BudgetExceededError, MediaError) as exc:
        return _fail(explain(exc))


if __name__ == "__main__":
    raise SystemExit(main())
