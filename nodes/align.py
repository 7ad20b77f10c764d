"""PASL Face Align: detect, pick and align one face per frame; keep what is needed to paste back."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..pasl.align import (
    ALIGN_MODES,
    BACKENDS,
    DEFAULT_DETECT_EVERY,
    SELECT_RULES,
    FaceAlignment,
    FaceTracker,
    TemporalSmoother,
    align_faces,
)
from ..pasl.errors import NoFaceError
from .host import Progress, chunks, detector, to_comfy_image

FRAMES_PER_STEP = 16


def tracking_inputs(when_off: str) -> list:
    """The optional ``tracking`` and ``detect_every`` inputs (Face Align and Reenact); ``when_off`` ends the first tooltip."""
    return [
        io.Boolean.Input("tracking", default=True, optional=True,
                         tooltip="Video: follow each face from frame to frame with the cheap landmark stage and run the "
                         "face detector only on the first frame, scene cuts, lost faces and every 'detect_every' frames "
                         f"(several times faster on a CPU). Off = detect every frame; {when_off}."),
        io.Int.Input("detect_every", default=DEFAULT_DETECT_EVERY, min=0, max=10000, optional=True,
                     tooltip="With tracking: run the face detector at least every this many frames "
                     "(0 = only when needed: first frame, scene cuts, lost faces)."),
    ]


class PASLFaceAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PASLFaceAlign",
            display_name="PASL Face Align",
            category="PASL",
            description="Finds a face in every frame (68 landmarks) and cuts PASL's aligned 256x256 crop. "
            "Frames without a face are flagged and later passed through unchanged.",
            inputs=[
                io.Image.Input("images", tooltip="A photo or video frames (any size; grey and RGBA are fine)."),
                io.Combo.Input("backend", options=list(BACKENDS), default="auto",
                               tooltip="auto = FAN if its weights are in models/pasl/face_alignment, else dlib (offline)."),
                io.Combo.Input("select", options=list(SELECT_RULES), default="largest",
                               tooltip="Which face when there are several."),
                io.Combo.Input("mode", options=list(ALIGN_MODES), default="align",
                               tooltip="align = PASL's 5-point alignment; resize = the input is already a face crop."),
                io.Float.Input("smoothing", default=1.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Temporal smoothing of video crops (0 = off, 1 = default, as in PASL Reenact). Removes jitter; "
                               "no effect on a single image; set 0 for a batch of unrelated photos."),
                io.Boolean.Input("lock_scale", default=False, tooltip="Keep the crop's scale fixed over a clip (no head-size wobble)."),
                io.Float.Input("fps", default=25.0, min=0.01, max=1000.0, step=0.01, optional=True,
                               tooltip="Frame rate of the frames, for the smoothing (its cutoffs are in Hz); "
                               "link Get Video Components' fps. 25 when unknown."),
                *tracking_inputs("turn off for a batch of unrelated photos"),
            ],
            outputs=[
                io.Image.Output(display_name="crops"),
                io.Custom("PASL_ALIGN").Output(display_name="align"),
                io.String.Output(display_name="report"),
            ],
        )

    @classmethod
    def execute(cls, images, backend, select, mode, smoothing, lock_scale, fps=25.0, tracking=True,
                detect_every=DEFAULT_DETECT_EVERY) -> io.NodeOutput:
        found = detector(backend)
        tracker = smoother = None
        if tracking and mode == "align":
            tracker = FaceTracker(found, detect_every, smoothing=smoothing, fps=fps, lock_scale=lock_scale)
        elif smoothing > 0 or lock_scale:
            smoother = TemporalSmoother(strength=smoothing, fps=fps, lock_scale=lock_scale)
        progress = Progress(images.shape[0])
        parts = []
        for part in chunks(images.shape[0], FRAMES_PER_STEP):
            if tracker is not None:
                parts.append(align_faces(images[part], select=select, mode=mode, tracker=tracker, require_face=False))
            else:
                parts.append(align_faces(images[part], select=select, mode=mode, detector=found, smoother=smoother, require_face=False))
            progress.step(part.stop - part.start)
        alignment = FaceAlignment.cat(parts).to("cpu")
        if mode == "align" and not bool(alignment.has_face.any()):
            raise NoFaceError(f"PASL Face Align: no face in any of the {len(alignment)} images ({alignment.summary()}). "
                              "Try backend 'dlib' (finds more large poses) or mode 'resize' for ready-made face crops.")
        return io.NodeOutput(to_comfy_image(alignment.crops), alignment, alignment.summary())
