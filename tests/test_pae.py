"""PAE: IR-50 layout and strict loading, parity with the authors' IR-50 and CSIM input path,
pose-bin rules, the six-file folder and identity similarity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pae_synthetic import face_like_images, ir50_state, write_ir50, write_pae_folder
from pasl.errors import MissingWeightError, WeightFileError
from pasl.pae import (
    IR50,
    PAIR_KINDS,
    head_yaw_degrees,
    identity_reference,
    load_ir50,
    load_pae,
    pair_kind,
    pose_bin,
    prepare_faces,
)
from synthetic import save_official, write_nets_ema

GOLDEN = Path(__file__).parent / "golden" / "pae_official.npz"


@pytest.fixture(scope="module")
def pae_root(pae_folder) -> Path:
    return pae_folder


@pytest.fixture(scope="module")
def pae(pae_root):
    return load_pae([pae_root])


def test_ir50_layout_matches_appendix_e():
    state = IR50().state_dict()
    assert len(state) == 349
    assert sum(p.numel() for p in IR50().parameters()) == 43_574_976
    shortcut_convs = sorted({int(k.split(".")[1]) for k in state if ".shortcut_layer.0.weight" in k})
    assert shortcut_convs == [3, 7, 21]  # only where the channel count changes
    assert max(int(k.split(".")[1]) for k in state if k.startswith("body.")) == 23
    assert tuple(state["output_layer.3.weight"].shape) == (512, 25088)
    assert tuple(state["input_layer.0.weight"].shape) == (64, 3, 3, 3)
    assert state["output_layer.4.running_var"].shape == (512,)


def test_load_ir50_strict_from_official_format(tmp_path):
    path = save_official(ir50_state(1), tmp_path / "Backbone_IR_50_Epoch_80.pth")  # tensors tagged cuda:0
    model = load_ir50(path)
    assert not model.training
    for key, value in ir50_state(1).items():
        assert torch.equal(model.state_dict()[key], value), key


def test_load_ir50_accepts_data_parallel_prefix(tmp_path):
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in ir50_state(2).items()}, path)
    assert torch.equal(load_ir50(path).state_dict()["output_layer.3.bias"], ir50_state(2)["output_layer.3.bias"])


def test_load_ir50_explains_wrong_missing_and_broken_files(tmp_path):
    with pytest.raises(WeightFileError, match="AEG checkpoint"):
        load_ir50(write_nets_ema(tmp_path / "1_nets_ema.ckpt"))
    with pytest.raises(MissingWeightError, match="drive.google.com"):
        load_ir50(tmp_path / "absent.pth")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(write_ir50(tmp_path / "ok.pth", 3).read_bytes()[:5000])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        load_ir50(broken)
    state = ir50_state(3)
    del state["body.5.res_layer.1.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(WeightFileError, match="1 missing keys .*body.5.res_layer.1.weight"):
        load_ir50(tmp_path / "short.pth")


def test_ir50_equals_the_authors_network():
    """Numbers in the golden file come from the authors' face.evoLVe ``model_irse.Backbone``
    (``FR_Pretrained_Test/Model/model_irse.py``) loaded with the same synthetic weights."""
    golden = np.load(GOLDEN)
    rng = np.random.RandomState(3)
    raw = torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 112, 112)).astype(np.float32))
    for seed in (10, 13):
        model = IR50().eval()
        model.load_state_dict(ir50_state(seed))
        with torch.no_grad():
            out = model(raw).numpy()
        # README: <=1e-5 relative (to the largest value); 2.1e-6 measured here
        np.testing.assert_allclose(out, golden[f"raw_{seed}"], rtol=0, atol=1e-5 * np.abs(golden[f"raw_{seed}"]).max())


def test_official_protocol_reproduces_mean_pae_csim(pae_root):
    """save_image -> cv2.imread (BGR) -> cv2.resize 112 -> ToTensor, then the FF and SS networks."""
    golden = np.load(GOLDEN)
    faces = face_like_images(7, 4)
    prepared = prepare_faces(faces, "official")
    np.testing.assert_array_equal(np.rint(prepared.numpy() * 255).astype(np.uint8), golden["official_input_u8"])
    pae = load_pae([pae_root])
    for seed, kind in ((10, "FF"), (13, "SS")):  # write_pae_folder seeds kinds in PAIR_KINDS order
        with torch.no_grad():
            embedding = pae.embed(faces, [kind] * 4, "official")
        scale = np.abs(golden[f"official_embed_{seed}"]).max()
        np.testing.assert_allclose(embedding.numpy(), golden[f"official_embed_{seed}"], rtol=0, atol=1e-5 * scale)  # 6.7e-6 measured
        yaw = torch.tensor([0.0, 0.0]) if kind == "FF" else torch.tensor([45.0, 45.0])
        with torch.no_grad():
            csim, kinds = pae.similarity(faces[:2], faces[2:], yaw, yaw, "official")
        assert kinds == [kind, kind]
        np.testing.assert_allclose(csim.numpy(), golden[f"official_csim_{seed}"], rtol=0, atol=5e-7)  # 1.8e-7 measured


def test_fixed_protocol_is_rgb_normalised_and_antialiased():
    faces = torch.zeros(1, 3, 256, 256)
    faces[:, 0] = 1.0  # pure red
    fixed = prepare_faces(faces, "fixed")
    assert fixed.shape == (1, 3, 112, 112)
    assert torch.allclose(fixed[0, 0], torch.ones(112, 112)) and torch.allclose(fixed[0, 1:], -torch.ones(2, 112, 112))
    official = prepare_faces(faces, "official")
    assert torch.equal(official[0, 2], torch.ones(112, 112)) and torch.equal(official[0, :2], torch.zeros(2, 112, 112))  # BGR, [0, 1]
    stripes = torch.zeros(1, 3, 256, 256)
    stripes[..., ::2] = 1.0  # 1-px stripes: aliasing would keep full contrast after downscaling
    assert prepare_faces(stripes, "fixed").std() < 0.1
    with pytest.raises(ValueError, match="protocol"):
        prepare_faces(faces, "bgr")


@pytest.mark.parametrize(
    "a, b, kind",
    [
        (0, 0, "FF"), (30, -30, "FF"), (-10, 75, "FP"), (80, 5, "FP"), (60, 90, "PP"), (-61, 62, "PP"),
        (45, 50, "SS"), (30, 45, "SS"), (60, 45, "SS"), (30, 60, "SS"), (10, 45, "FS"), (-45, 29.9, "FS"),
        (45, 75, "SP"), (59.9, 60.1, "SP"), (30.1, 90, "SP"), (30, 70, "FP"),
    ],
)
def test_pair_kind_follows_the_official_rule_order(a, b, kind):
    assert pair_kind(a, b) == kind
    assert pair_kind(b, a) == kind


def test_pose_bins():
    assert [pose_bin(y) for y in (0, -30, 30.01, 59.99, -60, 90)] == ["F", "F", "S", "S", "P", "P"]


def test_head_yaw_from_flame_pose():
    angles = torch.tensor([0.0, 20.0, -45.0, 75.0])
    pose = torch.zeros(4, 6)
    pose[:, 1] = torch.deg2rad(angles)  # rotation about +y only
    pose[:, 3] = 0.3  # the jaw does not turn the head
    torch.testing.assert_close(head_yaw_degrees(pose), angles, atol=1e-4, rtol=0)
    tilted = torch.zeros(1, 3)
    tilted[0, 0] = math.radians(25)  # pitch only
    assert abs(float(head_yaw_degrees(tilted))) < 1e-4


def test_folder_loader_routes_each_pair_to_its_network(pae, pae_root):
    assert set(pae.networks) == set(PAIR_KINDS) and not pae.single
    for i, kind in enumerate(PAIR_KINDS):
        expected = ir50_state(10 + i)["output_layer.3.bias"]
        assert torch.equal(pae.network(kind).output_layer[3].bias, expected), kind
    assert pae.network("PP", "official") is pae.network("SS")  # mean_pae_csim.py's criterion_id_pp = arcface_ss
    assert pae.network("PP", "fixed") is pae.networks["PP"]


def test_folder_loader_names_the_missing_pairs(tmp_path):
    write_pae_folder(tmp_path, kinds=("FF", "SS", "PP", "FS"))
    with pytest.raises(MissingWeightError, match=r"POE/FP/Backbone_IR_50_Epoch_120.pth, POE/SP/Backbone_IR_50_Epoch_150.pth"):
        load_pae([tmp_path])


def test_arcface_stands_in_for_every_pair(tmp_path):
    single = load_pae(arcface=write_ir50(tmp_path / "backbone_ir50_ms1m_epoch63.pth", 5))
    assert single.single and all(single.network(k) is single.networks["arcface"] for k in PAIR_KINDS)
    faces = face_like_images(1, 2)
    with torch.no_grad():
        a = single.embed(faces, ["FF", "PP"])
        b = single.embed(faces, ["SP", "FS"])
    torch.testing.assert_close(a, b)


def test_similarity_properties(pae):
    faces = face_like_images(2, 3)
    yaw_a, yaw_b = torch.tensor([0.0, 40.0, 70.0]), torch.tensor([70.0, 40.0, 10.0])
    with torch.no_grad():
        ab, kinds = pae.similarity(faces, faces.flip(0), yaw_a, yaw_b)
        ba, _ = pae.similarity(faces.flip(0), faces, yaw_b, yaw_a)
        same, _ = pae.similarity(faces, faces, yaw_a, yaw_b)
        one_to_many, kinds_b = pae.similarity(faces[:1], faces, yaw_a[:1], yaw_b)
    assert kinds == ["FP", "SS", "FP"]
    torch.testing.assert_close(ab, ba)
    torch.testing.assert_close(same, torch.ones(3), atol=1e-5, rtol=0)
    assert one_to_many.shape == (3,) and kinds_b == ["FP", "FS", "FF"]
    assert float(one_to_many[0]) == pytest.approx(1.0, abs=1e-5)  # face 0 vs itself
    assert (ab.abs() <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match="mismatched"):
        pae.similarity(faces[:2], faces, yaw_a[:2], yaw_b)


def test_embed_groups_by_network_without_changing_results(pae):
    faces = face_like_images(4, 4)
    kinds = ["FF", "SP", "FF", "PP"]
    with torch.no_grad():
        together = pae.embed(faces, kinds)
        alone = torch.cat([pae.embed(faces[i : i + 1], [k]) for i, k in enumerate(kinds)])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-5)


def test_identity_reference_embeds_with_every_network(pae):
    faces = face_like_images(5, 2)
    with torch.no_grad():
        ref = identity_reference(pae, faces, torch.tensor([12.0, -65.0]))
        direct = pae.embed(faces, ["SP", "SP"])
    assert set(ref.embeddings) == set(PAIR_KINDS)
    assert ref.pose_bins == ["F", "P"]
    torch.testing.assert_close(ref.embeddings["SP"], direct)
    assert ref.faces.shape == (2, 3, 256, 256) and ref.faces.device.type == "cpu"
