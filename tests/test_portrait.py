"""A source alone, posed by edited codes and pasted back into its photo (pasl.portrait), on synthetic weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pasl.edit import HeadEdit, edit_codes, head_angles
from pasl.keyframes import animate_codes, parse_keyframes
from pasl.models import load_models
from pasl.pipeline import ReenactOptions, Reenactor
from pasl.portrait import PosedFaces, paste_posed, pose_source, posed_shapes
from pasl.render import conditioning_maps
from pasl.shape import face_points, render_conditioning
from pipeline_synthetic import ScriptedDetector, weights_folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_models([weights_folder(tmp_path_factory.mktemp("pasl_weights"))])


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    rng = np.random.RandomState(0)
    return torch.from_numpy(rng.uniform(0.2, 0.9, size=(3, 300, 300)).astype(np.float32))


@pytest.fixture(scope="module")
def source(models, photo):
    return Reenactor(models, ScriptedDetector(), ReenactOptions(smoothing=0.0)).encode_source(photo)


def test_face_points_are_the_landmarks_the_map_draws(models, source):
    shapes = posed_shapes(source.shape, edit_codes(source.shape.codes, HeadEdit(yaw=40.0), flame=models.flame))
    points = face_points(models.flame, shapes)
    depth, drawn = render_conditioning(models.flame, models.faces, shapes)
    vertices_unused = torch.zeros(1, models.flame.v_template.shape[0], 3)
    _, redrawn = conditioning_maps(vertices_unused, (points - 128) / 128, models.faces)  # the drawing of exactly these points
    assert points.shape == (1, 68, 2) and torch.equal(drawn, redrawn)
    assert 0 < float(points.min()) and float(points.max()) < 256  # crop pixels, the face inside the crop


def test_turned_source_is_generated_and_pasted_with_the_union_mask(models, source, photo):
    yaws = [0.0, 30.0, 60.0, 90.0]
    codes = torch.cat([edit_codes(source.shape.codes, HeadEdit(yaw=y), flame=models.flame).pose for y in yaws])
    batch = source.shape.codes.expand(len(yaws)).replace(pose=codes)
    assert torch.allclose(head_angles(batch)[:, 0], torch.tensor(yaws), atol=1e-3)
    posed = pose_source(models, source.style, source.shape, batch, batch_size=3)
    assert posed.faces.shape == (4, 3, 256, 256) and torch.isfinite(posed.faces).all()
    assert not torch.equal(posed.depth[0], posed.depth[3])  # the head really turned
    frames, masks = paste_posed(photo, source.alignment.frame_from_crop[0], source.alignment.landmarks_crop[0], posed)
    assert frames.shape == (4, 3, 300, 300) and masks.shape == (4, 1, 300, 300)
    outside = masks[:, 0] == 0
    assert torch.equal(frames[:, :, outside[0]][0], photo[:, outside[0]])  # untouched where the mask is 0
    # the union mask covers at least the source's own outline in every frame
    own_outline = PosedFaces(posed.faces[:1], posed.depth[:1], posed.landmarks[:1], source.alignment.landmarks_crop[:1].float())
    _, own = paste_posed(photo, source.alignment.frame_from_crop[0], source.alignment.landmarks_crop[0], own_outline)
    assert (masks >= own - 1e-6).all()


def test_animation_frames(models, source):
    codes = animate_codes(source.shape.codes, parse_keyframes("0: yaw=0; 4: yaw=75; 8: yaw=0, smile=0"), 9, flame=models.flame)
    posed = pose_source(models, source.style, source.shape, codes, batch_size=4)
    assert posed.faces.shape[0] == 9
    assert torch.allclose(posed.faces[0], posed.faces[8], atol=1e-5)  # there and back again


def test_needs_the_shape_stage(tmp_path, source):
    from pasl.errors import MissingWeightError
    from synthetic import write_nets_ema

    write_nets_ema(tmp_path / "204000_nets_ema.ckpt")
    partial = load_models([tmp_path], require_shape_stage=False)
    with pytest.raises(MissingWeightError):
        pose_source(partial, source.style, source.shape, source.shape.codes)
