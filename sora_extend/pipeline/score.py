"""Score the whole video with a music model, paying for it at most once (the ledger protocol in
`generation.py`): one piece of music for the video, made from the clips joined as the merge joins them
(video-to-music) or from the plan's mood and the video's length (text-to-music), stored as the model
delivered it in the job folder. The merge lays it under (or in place of) the clips' own sound."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path

import av

from sora_extend import layout
from sora_extend.catalogue import MusicModelSpec
from sora_extend.errors import MediaError
from sora_extend.hashing import sha256_file
from sora_extend.media.merge import SoundPlan, merge_videos
from sora_extend.media.probe import MediaInfo, probe
from sora_extend.pipeline.generation import Gate, complete, generate, once
from sora_extend.pipeline.job import Job
from sora_extend.pipeline.joins import plan_joins
from sora_extend.pipeline.keys import generation_seed, score_key
from sora_extend.pipeline.records import ScoreRecord, SegmentRecord
from sora_extend.pipeline.steps import MergeStep, ScoreStep
from sora_extend.pipeline.stored import finished, keep_earlier_take
from sora_extend.plan import ShotPlan
from sora_extend.providers.base import GenerationRequest, Provider
from sora_extend.request import ExtendRequest

logger = logging.getLogger(__name__)


def score_model(job: Job) -> MusicModelSpec:
    spec = job.request.soundtrack_spec
    if spec is None:
        raise ValueError("this job has no music model (soundtrack is 'clips')")
    return spec


def score_step(request: ExtendRequest, plan: ShotPlan) -> ScoreStep | None:
    """The score this request's soundtrack asks for, or None (soundtrack 'clips')."""
    spec = request.soundtrack_spec
    if spec is None:
        return None
    bible = plan.bible
    mood = [bible.subject, bible.setting, f"Style: {bible.style}", f"Light: {bible.light}"]
    prompt = request.soundtrack_prompt or "Instrumental film score for: " + ". ".join(part for part in mood if part)
    return ScoreStep(prompt=prompt, seconds=plan.total_seconds, scores_video=spec.mode == "video_to_music")


def _draft(job: Job, step: MergeStep, inputs: Mapping[str, object], key: str) -> Path:
    """The clips joined as the merge joins them, with their own sound: what a video-to-music model scores
    (named after the score's key, which holds what the draft is made of)."""
    draft = job.cache.scratch(job.job_id) / f"draft-{key}.mp4"
    if not draft.exists():
        segments = [inputs[segment_id] for segment_id in step.segments]
        local = [job.cache.fetch(job.store, s.path, s.sha256) for s in segments if isinstance(s, SegmentRecord)]
        joins = plan_joins(step, inputs, job.request.crossfade_seconds)
        sound = SoundPlan(loudness_lufs=job.request.loudness_lufs)
        merge_videos(local, draft, joins, size=job.request.size, fps=job.spec.fps, sound=sound)
    return draft


def build_request(job: Job, step: ScoreStep, inputs: Mapping[str, object]) -> GenerationRequest:
    request, spec = job.request, score_model(job)
    width, height = request.size
    key = score_key(request, step, inputs)
    draft = _draft(job, step.draft, inputs, key) if step.draft else None
    seconds = probe(draft).duration if draft else step.seconds
    return GenerationRequest(
        label="score",
        index=0,
        content_key=key,
        model=spec.id,
        output="audio",
        prompt=step.prompt,
        seconds=math.ceil(seconds),
        aspect=request.aspect,
        resolution=request.resolution or "",
        width=width,
        height=height,
        seed=generation_seed(request.effective_seed, 0, 1) if spec.seed_field else None,
        story_seed=request.effective_seed,
        source_video=draft,
        source_seconds=seconds if draft else 0.0,
    )


def verify_audio(path: Path, request: GenerationRequest) -> MediaInfo:
    """The download decodes as sound; raise MediaError (re-fetchable) if not."""
    if not path.exists() or path.stat().st_size == 0:
        raise MediaError("the download is empty")
    info = probe(path)
    if info.audio is None or info.duration <= 0:
        raise MediaError("the download has no audio stream")
    return info


def _container(path: Path) -> str:
    """The file's format as a file suffix: mp3, m4a, wav, ..."""
    with av.open(str(path)) as container:
        name = container.format.name.split(",")[0]
    return {"mov": "m4a"}.get(name, name)


def render_score(
    job: Job, step: ScoreStep, inputs: Mapping[str, object], provider: Provider, gate: Gate = nullcontext
) -> ScoreRecord:
    """Make (or find, or resume) the video's score. `inputs` holds the clips a video-to-music model scores."""
    key = score_key(job.request, step, inputs)

    def produce() -> ScoreRecord:
        request = build_request(job, step, inputs)  # joins the clips into a draft: only when there is work to do
        price = job.prices.score(score_model(job), request.seconds)
        made = generate(job, provider, request, price, verify_audio, gate)
        info = made.checked
        assert isinstance(info, MediaInfo)
        suffix = _container(made.local)
        keep_earlier_take(job, layout.SCORE_RECORD, ScoreRecord, layout.SCORE_HISTORY_DIR)
        rel = layout.score(suffix)
        sha = sha256_file(made.local)
        job.store.put_file(made.local, rel)
        record = ScoreRecord(
            index=0,
            key=key,
            provider=provider.name,
            **made.paid_fields(),
            model=request.model,
            mode=request.mode,
            prompt=step.prompt,
            scored_from="video" if step.draft else "text",
            seconds=request.source_seconds or request.seconds,
            duration=round(info.duration, 3),
            format=suffix,
            path=rel,
            sha256=sha,
            bytes=made.local.stat().st_size,
        )
        job.store.write_json(layout.SCORE_RECORD, record)
        complete(job, made)
        logger.info("score: stored %s (%.1f s, $%.3f)", job.store.url(rel), record.duration, record.cost_usd)
        return record

    return once(job, key, lambda: finished(job, layout.SCORE_RECORD, key, ScoreRecord, "score"), produce)
