"""The offline default provider: renders clips, stills and scores locally, costs nothing, needs no key."""

from __future__ import annotations

from pathlib import Path

from sora_extend.media.frames import last_frame
from sora_extend.media.images import decode_png, encode_png
from sora_extend.media.probe import probe
from sora_extend.preview import PreviewSpec, render_preview
from sora_extend.preview.scene import opening_frame, with_reference
from sora_extend.preview.score import render_score, write_wav
from sora_extend.preview.still import render_still
from sora_extend.providers.base import GenerationRequest, Outcome, Provider, StateCallback, Submission


def preview_spec(request: GenerationRequest) -> PreviewSpec:
    return PreviewSpec(
        caption=request.prompt,
        seconds=request.seconds,
        width=request.width,
        height=request.height,
        fps=request.fps,
        seed=request.seed or 0,
        story_seed=request.story_seed,
        audio=request.audio,
        continuation=request.mode == "extend",
    )


class PreviewProvider(Provider):
    name = "preview"

    def endpoint_for(self, request: GenerationRequest) -> str:
        return getattr(self.spec.endpoints, request.mode, None) or f"preview/{request.mode}"

    def submit(self, request: GenerationRequest) -> Submission:
        return Submission(
            provider=self.name,
            model=self.spec.id,
            endpoint=self.endpoint_for(request),
            request_id=f"preview-{request.content_key.rsplit('-', 1)[-1][:16]}",
        )

    def wait(self, submission: Submission, on_state: StateCallback, timeout_s: float) -> Outcome:
        on_state("COMPLETED", "rendered locally")
        return Outcome(request_id=submission.request_id)

    def download(self, submission: Submission, outcome: Outcome, request: GenerationRequest, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if request.output == "audio":  # as long as the video it scores, or as asked
            seconds = probe(request.source_video).duration if request.source_video else request.seconds
            write_wav(render_score(seconds, request.seed or 0), dest)
            return
        reference = decode_png(request.references[0]) if request.references else None
        if request.output == "image":
            base = decode_png(request.images[0]) if request.images else None
            still = render_still(request.width, request.height, request.seed or 0, base)
            if base is None and reference is not None:  # the opening still shows the subject
                still = with_reference(still, reference)
            dest.write_bytes(encode_png(still))
            return
        first = decode_png(request.first_frame_png) if request.first_frame_png else None
        if request.source_video is not None:
            first = last_frame(request.source_video)
        elif first is None and reference is not None:
            first = with_reference(opening_frame(request.width, request.height, request.seed or 0), reference)
        last = decode_png(request.last_frame_png) if request.last_frame_png else None
        render_preview(preview_spec(request), first, dest, last)
