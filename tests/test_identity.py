"""Identity scores: loading the encoders with the other models, yaw from DECA, PAE-CSIM of faces."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from pae_synthetic import face_like_images, write_ir50
from pasl.errors import MissingWeightError
from pasl.identity import encode_identity, is_blank, score_identity
from pasl.models import load_models
from pasl.pae import pair_kind
from pasl.shape import face_yaw, shape_codes
from pipeline_synthetic import steered_deca, weights_folder

SOURCE_YAW = 70.0


@pytest.fixture(scope="module")
def folder(tmp_path_factory, pae_folder) -> Path:
    root = weights_folder(tmp_path_factory.mktemp("identity"))
    steered_deca(root / "deca_model.tar", yaw_deg=SOURCE_YAW)  # every head read as a profile
    shutil.copytree(pae_folder / "POE", root / "POE")
    return root


@pytest.fixture(scope="module")
def models(folder):
    return load_models([folder], identity="auto")


def source_identity(models, crops):
    """What the pipeline does with a source: its shape codes, then the identity (yaw from those codes)."""
    return encode_identity(models, crops, shape_codes(models.shape_encoder, crops))


def test_auto_loads_the_six_pae_networks(models):
    assert models.pae is not None and not models.pae.single and len(models.pae.networks) == 6


def test_auto_falls_back_to_arcface_then_to_nothing(tmp_path):
    root = weights_folder(tmp_path / "w")
    assert load_models([root], identity="auto").pae is None
    assert load_models([root]).pae is None  # identity encoders are opt-in
    with pytest.raises(MissingWeightError, match="POE/FF/Backbone_IR_50_Epoch_80.pth"):
        load_models([root], identity="pae")
    write_ir50(root / "backbone_ir50_ms1m_epoch63.pth", 4)
    assert load_models([root], identity="auto").pae.single


def test_scores_without_encoders_explain_what_is_missing(tmp_path):
    models = load_models([weights_folder(tmp_path / "w")])
    with pytest.raises(MissingWeightError, match="PAE networks .*drive.google.com"):
        models.require_identity()


def test_yaw_comes_from_the_shape_codes(models):
    yaw = face_yaw(shape_codes(models.shape_encoder, face_like_images(3, 2)))
    assert yaw.shape == (2,)
    torch.testing.assert_close(yaw, torch.full((2,), SOURCE_YAW), atol=3.0, rtol=0)  # the steered bias, plus a little input


def test_source_scored_against_itself_is_one(models):
    faces = face_like_images(5, 1)
    with torch.no_grad():
        reference = source_identity(models, faces)
        scores = score_identity(models, reference, faces)
    assert reference.pose_bins == ["P"]
    assert scores.kinds == ["PP"]
    assert scores.mean == pytest.approx(1.0, abs=1e-5)


def test_blank_faces_are_skipped_and_reported(models):
    faces = face_like_images(6, 3)
    faces[1] = 0
    with torch.no_grad():
        reference = source_identity(models, face_like_images(5, 1))
        scores = score_identity(models, reference, faces)
    assert is_blank(faces).tolist() == [False, True, False]
    assert math.isnan(scores.csim[1]) and scores.kinds[1] is None
    assert not scores.csim[[0, 2]].isnan().any()
    assert scores.mean == pytest.approx(float(scores.csim[[0, 2]].mean()))
    assert "face 1: no face, skipped" in scores.summary() and "over 2 of 3 faces" in scores.summary()
    with torch.no_grad():
        flagged = score_identity(models, reference, faces, skip=torch.tensor([True, False, False]))
    assert flagged.kinds[0] is None and flagged.kinds[1] is None and flagged.kinds[2] == scores.kinds[2]
    torch.testing.assert_close(flagged.csim[2], scores.csim[2])


def test_stored_embeddings_equal_a_direct_comparison(models):
    source, faces = face_like_images(5, 1), face_like_images(7, 3)
    with torch.no_grad():
        reference = source_identity(models, source)
        scores = score_identity(models, reference, faces)
        direct, kinds = models.pae.similarity(source, faces, reference.yaw, scores.yaw)
        official = score_identity(models, reference, faces, protocol="official")
        official_direct, _ = models.pae.similarity(source, faces, reference.yaw, scores.yaw, "official")
    assert scores.kinds == kinds == [pair_kind(float(reference.yaw[0]), y) for y in scores.yaw.tolist()]
    torch.testing.assert_close(scores.csim, direct, atol=1e-5, rtol=0)
    torch.testing.assert_close(official.csim, official_direct, atol=1e-5, rtol=0)
    assert not torch.allclose(official.csim, scores.csim)  # the two recipes really differ
