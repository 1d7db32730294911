"""Media benchmark: `make bench` (or `.venv/bin/python -m benchmarks.media_bench [--quick]`).

Generates its own clips (8 s, 1280x720, 24 fps, H.264 + AAC 48 kHz stereo with a music-and-noise bed,
each at its own level up to 20 dB apart as real models deliver, and a white flash and a beep at the same
instant in each), then measures, all in one run on this machine:
  - merge of 4 and 16 segments: ours (stream copy + one AAC encoder in a process of its own, with the
    default soundtrack work: crossfaded joins, every clip brought to -14 LUFS, peak-limited) vs moviepy's
    concatenate_videoclips + write_videofile (the original project's method) and vs the ffmpeg CLI (concat
    demuxer, video copied, audio re-encoded to AAC; median of 3 runs each, interleaved): time, peak
    memory, A/V offset at every join, frame count; the soundtrack work alone (its share of the merge),
    the result's loudness and true peak (ffmpeg's ebur128) and the largest sample step at the joins;
  - hand-off frame extraction: ours (PyAV seek + decode to EOF) vs an OpenCV seek to the reported
    frame count, on plain clips and on clips whose metadata lies: time and exactness;
  - offline preview render time for 4 x 8 s;
  - colour drift over an 8-hop preview chain with colour re-anchoring on and off.
Each measurement runs in a fresh subprocess so peak memory (ru_maxrss) is its own.
Only ratios carry to other machines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FPS, WIDTH, HEIGHT, SECONDS = 24, 1280, 720, 8
FLASH_FRAME = 36  # 1.5 s into each clip


def _child(task: str, **arguments: Any) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; it prints a JSON line with its result."""
    code = f"from benchmarks.media_bench import child; child({task!r}, {json.dumps(arguments)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child(task: str, raw: str) -> None:
    """One measurement; imports happen before the clock starts, so only the work itself is timed."""
    arguments = json.loads(raw)
    result: dict[str, Any] = {}
    if task == "merge-ours":
        from sora_extend.media.merge import JoinPlan, SoundPlan, merge_videos

        inputs = [Path(p) for p in arguments["inputs"]]
        sound = SoundPlan(loudness_lufs=arguments.get("loudness", -14.0))
        started = time.perf_counter()
        joins = [JoinPlan(transition="cut")] * (len(inputs) - 1)
        merged = merge_videos(inputs, Path(arguments["output"]), joins, sound=sound)
        result["method"] = merged.method
    elif task == "soundtrack-alone":
        from sora_extend.media.soundtrack import SoundPlan, Soundtrack

        stretches = _cut_parts([Path(p) for p in arguments["inputs"]])
        started = time.perf_counter()
        for _ in Soundtrack(SoundPlan()).chunks(iter(stretches)):
            pass
    elif task == "merge-moviepy":
        from moviepy import VideoFileClip, concatenate_videoclips

        started = time.perf_counter()
        clips = [VideoFileClip(p) for p in arguments["inputs"]]
        concatenate_videoclips(clips).write_videofile(
            arguments["output"], codec="libx264", audio_codec="aac", preset="medium", threads=2, logger=None
        )
    elif task == "merge-ffmpeg":
        import imageio_ffmpeg

        listing = Path(arguments["output"]).with_suffix(".txt")
        listing.write_text("".join(f"file '{p}'\n" for p in arguments["inputs"]))
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0"]
        command += ["-i", str(listing), "-c:v", "copy", "-c:a", "aac", "-b:a", "160k", arguments["output"]]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        result["seconds"] = time.perf_counter() - started
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # ffmpeg's own peak
        print(json.dumps(result))
        return
    elif task == "frame-ours":
        from sora_extend.media.frames import last_frame

        started = time.perf_counter()
        result["frame"] = _digest(last_frame(Path(arguments["path"])))
    elif task == "frame-opencv":
        import cv2  # noqa: F401  (imported before the clock starts)

        started = time.perf_counter()
        result["frame"] = _opencv_last_frame(arguments["path"])
    else:  # preview
        import sora_extend.pipeline.segment  # noqa: F401

        started = time.perf_counter()
        _preview_chain(arguments["out"], arguments["segments"], anchor=True, size=(WIDTH, HEIGHT))
    result["seconds"] = time.perf_counter() - started
    result["peak_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _cut_parts(inputs: list[Path]) -> list[Any]:
    """Each clip's sound placed end to end, as a merge with cut joins places it."""
    from sora_extend.media.crossfade import CUT_FADE_S
    from sora_extend.media.probe import probe
    from sora_extend.media.soundtrack import SoundPart

    stretches, start = [], 0.0
    for k, path in enumerate(inputs):
        end = start + probe(path).duration
        stretches.append(([SoundPart(path, k, 0.0, start, end, CUT_FADE_S if k else 0.0)], end))
        start = end
    return stretches


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss is no use here: Linux carries the parent's peak
    across fork + exec, so every child would report the benchmark driver's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _digest(rgb: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(rgb.tobytes()).hexdigest()[:16]


def _opencv_last_frame(path: str) -> str | None:
    """The common shortcut: seek to the reported frame count - 1 and read."""
    import cv2

    capture = cv2.VideoCapture(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, count - 1))
    ok, bgr = capture.read()
    capture.release()
    return _digest(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else None


def _truth_last_frame(path: Path) -> str:
    from tests.media_factory import decode_all

    return _digest(decode_all(path)[-1][1])


def _preview_chain(out: str, segments: int, anchor: bool, size: tuple[int, int]) -> list[np.ndarray]:
    """Render a preview chain through the real pipeline steps; returns each segment's mean Lab colour."""
    import os

    os.environ["SORA_EXTEND_WORK_DIR"] = str(Path(out) / "work")
    from sora_extend.media.frames import iter_frames
    from sora_extend.media.images import lab_stats
    from sora_extend.pipeline.job import Job, job_ref
    from sora_extend.pipeline.records import SegmentRecord
    from sora_extend.pipeline.run import run_job
    from sora_extend.request import ExtendRequest
    from sora_extend.settings import reload_settings

    settings = reload_settings()
    resolution = {640: "360p", 1280: "720p"}[size[0]]
    request = ExtendRequest(
        prompt="A slow walk through a night market",
        segments=segments,
        seconds=SECONDS,
        resolution=resolution,
        colour_anchor=anchor,
        storage=f"file://{out}/jobs",
    )
    job = Job(job_ref(request, settings), settings)
    _, outcome = run_job(job, until={f"segment-{segments:02d}"})
    colours = []
    for record in sorted((r for r in outcome.records.values() if isinstance(r, SegmentRecord)), key=lambda r: r.index):
        local = job.cache.fetch(job.store, record.path, record.sha256)
        frames = [f.rgb for f in iter_frames(local)]
        colours.append(np.mean([lab_stats(rgb)[0] for rgb in frames[:: max(1, len(frames) // 12)]], axis=0))
    return colours


def _sync_offsets(path: Path, joins: int) -> list[float]:
    from tests.media_factory import beep_onsets, decode_audio, flash_times

    flashes = flash_times(path)
    samples, rate = decode_audio(path)
    beeps = beep_onsets(samples, rate)
    assert len(flashes) == len(beeps) == joins + 1, (len(flashes), len(beeps))
    return [abs(f - b) * 1000 for f, b in zip(flashes, beeps, strict=True)]


def make_clips(folder: Path, count: int) -> list[Path]:
    from tests.media_factory import write_clip

    return [
        write_clip(
            folder / f"seg{k:02d}.mp4",
            SECONDS * FPS,
            fps=FPS,
            width=WIDTH,
            height=HEIGHT,
            flash_frame=FLASH_FRAME,
            start_index=1000 * k,
            bed=True,
            bed_db=-5.0 * ((3 * k) % 5),  # 0, -15, -5, -20, -10 dB: each clip at its own level
        )
        for k in range(count)
    ]


def _median(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time."""
    return sorted(results, key=lambda result: float(result["seconds"]))[len(results) // 2]


def _share_row(count: int, inputs: list[str], merge_s: float) -> str:
    """What the soundtrack work costs on its own, against the merge it is part of."""
    alone = _median([_child("soundtrack-alone", inputs=inputs) for _ in range(3)])
    return row(
        f"merge {count}: soundtrack work alone (decode, loudness, crossfades, limiter)",
        f"{alone['seconds']:.2f} s = {100 * alone['seconds'] / merge_s:.0f}% of the merge's time",
        "made while the AAC encoder (a process of its own) encodes",
        "",
        "report",
    )


def _voiced_clips(folder: Path, count: int) -> list[Path]:
    """Shots whose sound is like a video model's: a voice over a chord and a drone, each shot at its own level
    (20 dB apart), phase and chord, starting and stopping abruptly; chained from each other's last frame."""
    from sora_extend.media.frames import last_frame
    from sora_extend.preview import PreviewSpec, render_preview

    clips: list[Path] = []
    first = None
    for k in range(count):
        spec = PreviewSpec(
            caption=f"shot {k + 1}", seconds=SECONDS, width=320, height=180, fps=FPS, seed=7 + 1009 * k, story_seed=11
        )
        clips.append(render_preview(spec, first, folder / f"voiced{k:02d}.mp4"))
        first = last_frame(clips[-1])
    return clips


def soundtrack_rows(folder: Path, count: int = 8) -> list[str]:
    """What each soundtrack option does to the sound of model-like shots, measured with ffmpeg (its decoder
    and ebur128), not with the code under test."""
    from sora_extend.media.merge import JoinPlan, SoundPlan, merge_videos
    from sora_extend.preview.score import BELL_BAND_HZ, render_score, write_wav
    from tests.media_factory import ffmpeg
    from tests.sound_checks import band_db, click_ratio, decode, ebur128, segment_spans

    clips = _voiced_clips(folder, count)
    joins = [JoinPlan(dedupe_first_frame=True)] * (count - 1)
    levels = [ebur128(clip).integrated for clip in clips]
    listing = folder / "voiced.txt"
    listing.write_text("".join(f"file '{clip}'\n" for clip in clips))
    spliced = folder / "voiced-ffmpeg.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c:v", "copy", "-c:a", "aac", str(spliced))
    ends = list(itertools.accumulate(_concat_duration(clip) for clip in clips))[:-1]
    score = write_wav(render_score(count * SECONDS + 1, 5), folder / "score.wav")
    plans = {
        "clips (default)": SoundPlan(),
        "--loudness off": SoundPlan(loudness_lufs=None),
        "score": SoundPlan(score=score),
        "score-only": SoundPlan(score=score, score_only=True),
    }
    spliced_steps = max(click_ratio(decode(spliced), at, search_s=0.05) for at in ends)
    rows = [
        row(
            f"soundtrack, {count} model-like shots: spliced by ffmpeg concat",
            f"shots {min(levels):.1f} to {max(levels):.1f} LUFS",
            f"largest step at a join {spliced_steps:.1f}x the sound around it",
            "",
            "report",
        )
    ]
    plain = None
    for name, plan in plans.items():
        video = folder / f"voiced-{len(rows)}.mp4"
        result = merge_videos(clips, video, joins, sound=plan)
        sound = decode(video)
        spans = [
            ebur128(video, start, end).integrated for start, end in segment_spans(result.duration, result.joins_at)
        ]
        whole = ebur128(video)
        words = f"whole {whole.integrated:.1f} LUFS, true peak {whole.true_peak:.1f} dBTP"
        extra = f"step at joins <= {max(click_ratio(sound, at) for at in result.joins_at):.2f}x"
        if plan.score is None and plan.loudness_lufs is not None:
            plain = sound
        if plan.score is not None and not plan.score_only and plain is not None:
            bells, voice = band_db(sound, BELL_BAND_HZ)[5:-5], band_db(plain, None)[5:-5]
            dip = np.median(bells[voice <= np.percentile(voice, 20)]) - np.median(
                bells[voice >= np.percentile(voice, 80)]
            )
            extra += f"; music {dip:.1f} dB lower under the voice than between its lines"
        rows.append(
            row(
                f"soundtrack, {count} model-like shots: {name}",
                f"segments {min(spans):.1f} to {max(spans):.1f} LUFS ({max(spans) - min(spans):.1f} LU apart)",
                words,
                extra,
                "report",
            )
        )
    return rows


def _concat_duration(clip: Path) -> float:
    """How long a clip is as ffmpeg's concat demuxer lays it end to end: its container's duration."""
    from sora_extend.media.probe import probe

    return probe(clip).duration


def lying_clips(folder: Path, source: Path) -> dict[str, Path]:
    from tests.media_factory import fragmented, with_edit_list, write_clip, write_vfr_clip

    times = [i / FPS + (0.013 if i % 5 == 0 else 0.0) for i in range(SECONDS * FPS)]
    return {
        "edit list (copy cut)": with_edit_list(source, folder / "editlist.mp4", start=3.3),
        "fragmented": fragmented(source, folder / "frag.mp4"),
        "audio 3 s longer": write_clip(
            folder / "longaudio.mp4",
            SECONDS * FPS,
            fps=FPS,
            width=WIDTH,
            height=HEIGHT,
            audio_seconds=SECONDS + 3,
            gop_seconds=10,
        ),
        "variable frame rate": write_vfr_clip(folder / "vfr.mp4", times, WIDTH, HEIGHT),
        "single keyframe": write_clip(
            folder / "onegop.mp4", SECONDS * FPS, fps=FPS, width=WIDTH, height=HEIGHT, gop_seconds=SECONDS
        ),
    }


def row(name: str, ours: str, baseline: str, ratio: str, target: str) -> str:
    return f"| {name} | {ours} | {baseline} | {ratio} | {target} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 16-segment moviepy baseline (minutes)")
    args = parser.parse_args()
    rows = ["| measurement | ours | baseline | ratio | target |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="sora-bench-") as tmp:
        folder = Path(tmp)
        print("generating 16 x 8 s 720p clips ...", file=sys.stderr)
        clips = make_clips(folder, 16)
        for count in (4, 16):
            inputs = [str(p) for p in clips[:count]]
            # A/V sync is measured with the levels left as they came: brought to -14 LUFS and limited, the
            # quiet clips' bed would pass the beep detector's threshold.
            _child("merge-ours", inputs=inputs, output=str(folder / f"sync{count}.mp4"), loudness=None)
            offsets = _sync_offsets(folder / f"sync{count}.mp4", count - 1)
            runs = [
                (
                    _child("merge-ours", inputs=inputs, output=str(folder / f"ours{count}.mp4")),
                    _child("merge-ffmpeg", inputs=inputs, output=str(folder / f"ffmpeg{count}.mp4")),
                )
                for _ in range(3)
            ]
            ours, cli = _median([run[0] for run in runs]), _median([run[1] for run in runs])
            from sora_extend.media.probe import probe

            frames = probe(folder / f"ours{count}.mp4").video.frames  # type: ignore[union-attr]
            if args.quick and count == 16:
                base = {"seconds": float("nan"), "peak_mb": float("nan")}
            else:
                print(f"moviepy baseline, {count} clips ...", file=sys.stderr)
                base = _child("merge-moviepy", inputs=inputs, output=str(folder / f"moviepy{count}.mp4"))
            cli_offsets = _sync_offsets(folder / f"ffmpeg{count}.mp4", count - 1)
            speedup = base["seconds"] / ours["seconds"]
            rows.append(
                row(
                    f"merge {count} x 8 s 720p: time",
                    f"{ours['seconds']:.2f} s ({ours['method']})",
                    f"{base['seconds']:.2f} s",
                    f"{speedup:.1f}x faster",
                    ">= 30x (16 clips)",
                )
            )
            rows.append(
                row(
                    f"merge {count} x 8 s 720p: peak memory",
                    f"{ours['peak_mb']:.0f} MB",
                    f"{base['peak_mb']:.0f} MB",
                    f"{base['peak_mb'] / ours['peak_mb']:.1f}x less",
                    "<= 100 MB",
                )
            )
            rows.append(
                row(
                    f"merge {count} x 8 s 720p vs ffmpeg concat (copy video, AAC re-encode), median of 3",
                    f"{ours['seconds']:.2f} s, {ours['peak_mb']:.0f} MB",
                    f"{cli['seconds']:.2f} s, {cli['peak_mb']:.0f} MB",
                    f"{ours['seconds'] / cli['seconds']:.2f}x ffmpeg's time",
                    "<= 1.2x",
                )
            )
            rows.append(_share_row(count, inputs, ours["seconds"]))
            rows.append(
                row(
                    f"merge {count}: A/V offset at each clip's marker (crossfaded joins, levels as they came)",
                    f"max {max(offsets):.2f} ms",
                    f"ffmpeg concat: max {max(cli_offsets):.2f} ms",
                    "",
                    "<= 5 ms",
                )
            )
            rows.append(
                row(
                    f"merge {count}: frames",
                    f"{frames}",
                    f"{count * SECONDS * FPS} in inputs",
                    "equal" if frames == count * SECONDS * FPS else "DIFFERENT",
                    "equal",
                )
            )

        print("soundtrack options on model-like shots ...", file=sys.stderr)
        (folder / "voiced").mkdir()
        rows += soundtrack_rows(folder / "voiced")

        tests = {f"plain clip {k + 1}": clips[k] for k in range(4)} | lying_clips(folder, clips[0])
        ours_times, cv_times, exact_ours, exact_cv = [], [], 0, 0
        for name, path in tests.items():
            truth = _truth_last_frame(path)
            ours = _child("frame-ours", path=str(path))
            cv = _child("frame-opencv", path=str(path))
            ours_times.append(ours["seconds"])
            cv_times.append(cv["seconds"])
            exact_ours += ours["frame"] == truth
            exact_cv += cv["frame"] == truth
            rows.append(
                row(
                    f"last frame: {name}",
                    "exact" if ours["frame"] == truth else "WRONG",
                    "exact" if cv["frame"] == truth else ("no frame" if cv["frame"] is None else "wrong"),
                    f"{ours['seconds']:.3f} s vs {cv['seconds']:.3f} s",
                    "exact",
                )
            )
        rows.append(row("last frame: exact files", f"{exact_ours}/{len(tests)}", f"{exact_cv}/{len(tests)}", "", "all"))
        rows.append(
            row(
                "last frame: median time per 8 s 720p clip",
                f"{statistics.median(ours_times):.3f} s",
                f"{statistics.median(cv_times):.3f} s",
                f"{statistics.median(cv_times) / statistics.median(ours_times):.1f}x",
                "<= 0.35 s",
            )
        )

        preview = _child("preview", out=str(folder / "preview"), segments=4)
        rows.append(
            row("preview render 4 x 8 s 720p (with hand-offs)", f"{preview['seconds']:.1f} s", "", "", "report")
        )

        drift = {}
        for anchor in (True, False):
            colours = _preview_chain(str(folder / f"chain-{anchor}"), 8, anchor=anchor, size=(640, 360))
            drift[anchor] = float(np.linalg.norm(colours[-1] - colours[0]))
        rows.append(
            row(
                "8-hop colour drift (mean Lab distance, last vs first segment)",
                f"{drift[True]:.2f} (re-anchoring on)",
                f"{drift[False]:.2f} (off)",
                f"{drift[False] / max(drift[True], 1e-6):.1f}x less drift",
                "on <= 3.0, off > on",
            )
        )
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
