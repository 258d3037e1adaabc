"""Face depth network F_d, pose network F_p and their ResNet backbones."""

from __future__ import annotations

import pytest
import torch

from dagan.errors import CheckpointError, InputError
from dagan.models.depth import DepthDecoder, FaceDepthNet, ResnetEncoder, load_depth_net_state
from dagan.models.pose import PoseNet, monodepth2_pose_decoder_state
from dagan.models.resnet import ResNet, detect_backbone, expand_input_weights, load_torchvision_resnet

CHANNELS = {"resnet18": [64, 64, 128, 256, 512], "resnet50": [64, 256, 512, 1024, 2048]}
# torchvision's ImageNet models minus their classifier (fc: 512·1000+1000 and 2048·1000+1000).
PARAMS_WITHOUT_FC = {"resnet18": 11_689_512 - 513_000, "resnet50": 25_557_032 - 2_049_000}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------------- ResNet


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_resnet_feature_maps_and_size(backbone: str) -> None:
    net = ResNet(backbone)
    feats = net(torch.rand(2, 3, 64, 64))
    assert net.channels == CHANNELS[backbone]
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // 2 ** (i + 1), 64 // 2 ** (i + 1)) for i, c in enumerate(CHANNELS[backbone])
    ]
    assert count(net) == PARAMS_WITHOUT_FC[backbone]


def test_resnet_uses_torchvision_key_names() -> None:
    r18 = ResNet("resnet18").state_dict()
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_var", "layer4.1.bn2.weight"} <= set(r18)
    assert not any(k.startswith(("fc.", "avgpool")) for k in r18)
    assert "layer1.0.downsample.0.weight" not in r18  # 64 → 64 at stride 1 needs no projection
    r50 = ResNet("resnet50")
    keys = set(r50.state_dict())
    assert {"layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer3.5.bn3.bias"} <= keys
    # torchvision v1.5: the stride sits on the 3×3 conv of the bottleneck.
    assert r50.layer2[0].conv1.stride == (1, 1) and r50.layer2[0].conv2.stride == (2, 2)


def test_expand_input_weights_formula_and_validation() -> None:
    w = torch.randn(64, 3, 7, 7)
    w2 = expand_input_weights(w, 2)
    assert w2.shape == (64, 6, 7, 7)
    torch.testing.assert_close(w2[:, :3] + w2[:, 3:], w)
    with pytest.raises(ValueError, match="4-D"):
        expand_input_weights(w[0], 2)
    with pytest.raises(ValueError, match="num_images"):
        expand_input_weights(w, 0)


def test_expanded_two_frame_encoder_matches_single_frame_on_identical_frames() -> None:
    single = ResnetEncoder("resnet18", num_input_images=1).eval()
    pair = ResnetEncoder("resnet18", num_input_images=2).eval()
    state = single.state_dict()
    state["encoder.conv1.weight"] = expand_input_weights(state["encoder.conv1.weight"], 2)
    pair.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        for a, b in zip(single(x), pair(torch.cat([x, x], dim=1))):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # Different frames must give a different response (the test can fail).
        other = pair(torch.cat([x, torch.rand_like(x)], dim=1))[-1]
    assert not torch.allclose(other, single(x)[-1], atol=1e-3)


def test_detect_backbone_from_keys() -> None:
    r18 = FaceDepthNet("resnet18").encoder.state_dict()
    r50 = FaceDepthNet("resnet50").encoder.state_dict()
    assert detect_backbone(r18) == "resnet18"
    assert detect_backbone(r50) == "resnet50"
    official_like = {"module." + k: v for k, v in r50.items()}
    official_like |= {"height": 256, "width": 256, "use_stereo": False}
    assert detect_backbone(official_like) == "resnet50"
    assert detect_backbone(ResNet("resnet34").state_dict()) == "resnet34"
    with pytest.raises(CheckpointError, match="ResNet"):
        detect_backbone({"decoder.0.conv.conv.weight": torch.zeros(1)})


def test_load_torchvision_resnet(tmp_path) -> None:
    source = ResNet("resnet18").eval()
    state = source.state_dict() | {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    x = torch.rand(1, 3, 32, 32)
    loaded = load_torchvision_resnet(path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[-1], source(x)[-1])
    pair = load_torchvision_resnet(state, num_input_images=2)
    assert pair.conv1.weight.shape == (64, 6, 7, 7)
    torch.testing.assert_close(pair.conv1.weight[:, :3] * 2, state["conv1.weight"])

    encoder = ResnetEncoder("resnet18", num_input_images=2)
    encoder.load_imagenet_weights(path)
    torch.testing.assert_close(encoder.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    with pytest.raises(CheckpointError, match="resnet18.*resnet50"):
        ResnetEncoder("resnet50").load_imagenet_weights(path)


def test_load_torchvision_resnet_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_torchvision_resnet(tmp_path / "missing.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_torchvision_resnet(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_torchvision_resnet(tmp_path / "junk.pth")
    state = ResNet("resnet18").state_dict()
    state["layer3.0.conv1.weight"] = torch.zeros(256, 128, 1, 1)
    with pytest.raises(CheckpointError, match=r"layer3\.0\.conv1\.weight has shape"):
        load_torchvision_resnet(state)


# ------------------------------------------------------------------------------------------ depth net


def expected_decoder_shapes(enc: list[int], num_scales: int = 4) -> dict[str, tuple[int, ...]]:
    dec = [16, 32, 64, 128, 256]
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    for i in range(4, -1, -1):
        cin0 = enc[4] if i == 4 else dec[i + 1]
        cin1 = dec[i] + (enc[i - 1] if i > 0 else 0)
        for cin in (cin0, cin1):
            shapes[f"decoder.{index}.conv.conv.weight"] = (dec[i], cin, 3, 3)
            shapes[f"decoder.{index}.conv.conv.bias"] = (dec[i],)
            index += 1
    for s in range(num_scales):
        shapes[f"decoder.{10 + s}.conv.weight"] = (1, dec[s], 3, 3)
        shapes[f"decoder.{10 + s}.conv.bias"] = (1,)
    return shapes


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_depth_net_official_key_layout(backbone: str) -> None:
    net = FaceDepthNet(backbone)
    decoder = {k: tuple(v.shape) for k, v in net.decoder.state_dict().items()}
    assert decoder == expected_decoder_shapes(CHANNELS[backbone])
    assert list(decoder)[:2] == ["decoder.0.conv.conv.weight", "decoder.0.conv.conv.bias"]
    assert list(decoder)[-1] == "decoder.13.conv.bias"
    encoder = net.encoder.state_dict()
    assert encoder["encoder.conv1.weight"].shape == (64, 3, 7, 7)
    assert ("encoder.layer1.0.conv3.weight" in encoder) == (backbone == "resnet50")


def test_disparity_range_and_scales() -> None:
    net = FaceDepthNet("resnet18").eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        disps = net.forward_multiscale(x)
        single = net(x)
    assert [tuple(d.shape) for d in disps] == [(2, 1, 64 // 2**s, 96 // 2**s) for s in range(4)]
    for d in disps:
        assert d.min() > 0 and d.max() < 1
    torch.testing.assert_close(single, disps[0])
    assert len(FaceDepthNet("resnet18", num_scales=1).forward_multiscale(x)) == 1


def test_disparity_convs_are_ordered_by_scale() -> None:
    net = FaceDepthNet("resnet18").eval()
    with torch.no_grad():
        net.decoder.decoder[10].conv.weight.zero_()
        net.decoder.decoder[10].conv.bias.zero_()
        disps = net.forward_multiscale(torch.rand(1, 3, 64, 64))
    torch.testing.assert_close(disps[0], torch.full_like(disps[0], 0.5))  # decoder.10 → scale 0
    assert disps[1].std() > 0


def test_depth_net_full_size_forward() -> None:
    net = FaceDepthNet("resnet18").eval()
    with torch.no_grad():
        disp = net(torch.rand(1, 3, 256, 256))
    assert disp.shape == (1, 1, 256, 256)
    assert disp.min() > 0 and disp.max() < 1


def test_depth_net_rejects_bad_input() -> None:
    net = FaceDepthNet("resnet18")
    with pytest.raises(InputError, match="multiples of 32"):
        net(torch.rand(1, 3, 70, 64))
    with pytest.raises(InputError, match=">= 64"):
        net(torch.rand(1, 3, 32, 64))
    with pytest.raises(InputError, match="B×3×H×W"):
        net(torch.rand(1, 4, 64, 64))
    with pytest.raises(ValueError, match="num_scales"):
        DepthDecoder(CHANNELS["resnet18"], num_scales=5)


def test_load_monodepth2_format_depth_state() -> None:
    source = FaceDepthNet("resnet18").eval()
    encoder_state = source.encoder.state_dict() | {
        "encoder.fc.weight": torch.zeros(1000, 512), "encoder.fc.bias": torch.zeros(1000),
        "height": 256, "width": 256, "use_stereo": False,
    }
    target = FaceDepthNet("resnet18", num_scales=1).eval()
    load_depth_net_state(target, encoder_state, source.decoder.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
    with pytest.raises(CheckpointError, match="resnet18 encoder.*resnet50"):
        load_depth_net_state(FaceDepthNet("resnet50"), encoder_state, source.decoder.state_dict())


# ------------------------------------------------------------------------------------------- pose net


def test_pose_net_outputs() -> None:
    net = PoseNet("resnet18", image_size=(64, 96))
    out = net(torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96))
    assert out["axisangle"].shape == (2, 3) and out["translation"].shape == (2, 3)
    assert out["axisangle"].abs().max() > 0
    # The head starts at the prior camera: f = 1.2·W (square pixels), principal point at the centre.
    expected = torch.tensor([[1.2 * 96, 0, 47.5], [0, 1.2 * 96, 31.5], [0, 0, 1.0]]).expand(2, 3, 3)
    torch.testing.assert_close(out["intrinsics"], expected)
    u = out["uncertainty"]
    assert u.shape == (2, 1, 64, 96) and u.min() > 0 and u.max() < 1


def test_learned_intrinsics_stay_valid_for_any_head_output() -> None:
    net = PoseNet("resnet18", image_size=(64, 64))
    with torch.no_grad():
        for conv in (net.intrinsics_head.focal, net.intrinsics_head.principal):
            conv.weight.normal_(0, 5.0)
            conv.bias.normal_(0, 5.0)
        k = net(torch.rand(4, 3, 64, 96), torch.rand(4, 3, 64, 96))["intrinsics"]
    assert k.shape == (4, 3, 3)
    assert (k[:, 0, 0] >= 0.01 * 96).all() and (k[:, 1, 1] >= 0.01 * 64).all()
    # Inside the image, whose pixel centres run from 0 to W − 1 (edges at −0.5 and W − 0.5).
    assert ((k[:, 0, 2] >= -0.5) & (k[:, 0, 2] <= 95.5)).all()
    assert ((k[:, 1, 2] >= -0.5) & (k[:, 1, 2] <= 63.5)).all()
    assert k[:, 0, 0].std() > 0  # depends on the frames
    torch.testing.assert_close(k[:, 2], torch.tensor([0.0, 0.0, 1.0]).expand(4, 3))
    torch.testing.assert_close(k[:, 0, 1], torch.zeros(4))


def test_fixed_intrinsics_are_rescaled_to_the_input() -> None:
    default = PoseNet("resnet18", learn_intrinsics=False, uncertainty=False, image_size=(256, 256)).eval()
    k = default(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))["intrinsics"]
    torch.testing.assert_close(k[0], torch.tensor([[38.4, 0, 15.5], [0, 38.4, 15.5], [0, 0, 1.0]]))
    given = torch.tensor([[300.0, 0, 120], [0, 280, 130], [0, 0, 1]])
    net = PoseNet("resnet18", learn_intrinsics=False, uncertainty=False, image_size=(256, 256), intrinsics=given)
    k = net(torch.rand(2, 3, 64, 32), torch.rand(2, 3, 64, 32))["intrinsics"]
    # f scales with the size; the principal point keeps its place relative to the image edges.
    expected = torch.tensor([[37.5, 0, 120.5 / 8 - 0.5], [0, 70, 130.5 / 4 - 0.5], [0, 0, 1]])
    torch.testing.assert_close(k, expected.expand(2, 3, 3))
    # Same size as at construction: the given matrix comes back unchanged.
    k = net.eval()(torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256))["intrinsics"]
    torch.testing.assert_close(k[0], given)
    assert not any("fixed" in key for key in net.state_dict())


def test_zeroed_pose_decoder_gives_identity_motion() -> None:
    net = PoseNet("resnet18", uncertainty=False)
    with torch.no_grad():
        net.decoder.net[3].weight.zero_()
        net.decoder.net[3].bias.zero_()
        out = net(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert torch.equal(out["axisangle"], torch.zeros(2, 3))
    assert torch.equal(out["translation"], torch.zeros(2, 3))
    assert out["uncertainty"] is None


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (72, 80)])
def test_uncertainty_matches_input_size(size: tuple[int, int]) -> None:
    net = PoseNet("resnet18", image_size=size).eval()
    with torch.no_grad():
        u = net(torch.rand(1, 3, *size), torch.rand(1, 3, *size))["uncertainty"]
    assert u.shape == (1, 1, *size)
    assert u.min() > 0 and u.max() < 1 and u.std() > 0


def test_pose_decoder_keys_and_monodepth2_conversion() -> None:
    net = PoseNet("resnet18", uncertainty=False, learn_intrinsics=False).eval()
    assert {k: tuple(v.shape) for k, v in net.decoder.state_dict().items()} == {
        "net.0.weight": (256, 512, 1, 1), "net.0.bias": (256,),
        "net.1.weight": (256, 256, 3, 3), "net.1.bias": (256,),
        "net.2.weight": (256, 256, 3, 3), "net.2.bias": (256,),
        "net.3.weight": (6, 256, 1, 1), "net.3.bias": (6,),
    }
    assert net.encoder.state_dict()["encoder.conv1.weight"].shape == (64, 6, 7, 7)
    # Monodepth2's pose.pth predicts two frames (12 outputs) and uses the first six.
    state = net.decoder.state_dict()
    official = dict(state)
    official["net.3.weight"] = torch.cat([state["net.3.weight"], torch.randn(6, 256, 1, 1)])
    official["net.3.bias"] = torch.cat([state["net.3.bias"], torch.randn(6)])
    other = PoseNet("resnet18", uncertainty=False, learn_intrinsics=False).eval()
    other.encoder.load_state_dict(net.encoder.state_dict())
    other.decoder.load_state_dict(monodepth2_pose_decoder_state(official))
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(other(a, b)["axisangle"], net(a, b)["axisangle"])
    with pytest.raises(CheckpointError, match="net.3"):
        monodepth2_pose_decoder_state({"net.0.weight": torch.zeros(1)})


def test_pose_net_rejects_mismatched_frames() -> None:
    with pytest.raises(InputError, match="equal shape"):
        PoseNet("resnet18")(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 32, 64))


# -------------------------------------------------------------------------------- gradients / no dead


def assert_all_parameters_get_gradients(module: torch.nn.Module) -> None:
    dead = [n for n, p in module.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, f"parameters without gradient: {dead[:5]}"


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_depth_net_gradients_reach_every_parameter(backbone: str) -> None:
    net = FaceDepthNet(backbone).train()
    disps = net.forward_multiscale(torch.rand(1, 3, 64, 64))
    # Random weights: a plain sum would cancel through the batch-normalised layers.
    loss = sum((d * torch.randn_like(d)).sum() for d in disps)
    loss.backward()
    assert_all_parameters_get_gradients(net)


@pytest.mark.parametrize("uncertainty,learn_intrinsics", [(True, True), (False, False)])
def test_pose_net_gradients_reach_every_parameter(uncertainty: bool, learn_intrinsics: bool) -> None:
    net = PoseNet("resnet18", uncertainty=uncertainty, learn_intrinsics=learn_intrinsics).train()
    out = net(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    loss = sum((v * torch.randn_like(v)).sum() for v in out.values() if v is not None)
    loss.backward()
    assert_all_parameters_get_gradients(net)
    assert (net.intrinsics_head is not None) == learn_intrinsics
    assert (net.uncertainty_head is not None) == uncertainty


def test_intrinsics_stay_full_precision_under_autocast() -> None:
    net = PoseNet("resnet18", uncertainty=False).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert out["axisangle"].dtype == torch.bfloat16
    assert out["intrinsics"].dtype == torch.float32
    torch.testing.assert_close(out["intrinsics"][0, 0, 0], torch.tensor(1.2 * 32))
    assert out["intrinsics"][0, 0, 2] == 15.5
