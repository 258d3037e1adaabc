"""Narrow depth/pose encoders (``depth_params.width``) for small models such as the bundled demo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dagan.config import load_config
from dagan.models.depth import FaceDepthNet
from dagan.models.factory import build_depth_net, build_pose_net
from dagan.models.pose import PoseNet
from dagan.models.resnet import ResNet, resnet_channels, scaled_channels


def test_width_one_is_the_standard_resnet() -> None:
    assert resnet_channels("resnet18", 1.0) == [64, 64, 128, 256, 512]
    net = ResNet("resnet18")
    assert net.conv1.weight.shape == (64, 3, 7, 7)
    assert net.layer4[1].conv2.weight.shape == (512, 512, 3, 3)


def test_scaled_channels_rounds_with_a_floor_of_eight() -> None:
    assert scaled_channels(64, 0.25) == 16
    assert scaled_channels(512, 0.25) == 128
    assert scaled_channels(64, 0.05) == 8
    with pytest.raises(ValueError, match="positive"):
        scaled_channels(64, 0.0)


def test_narrow_encoder_shapes_and_parameter_count() -> None:
    torch.manual_seed(0)
    wide, narrow = FaceDepthNet(), FaceDepthNet(width=0.25)
    assert narrow.encoder.channels == [16, 16, 32, 64, 128]
    assert resnet_channels("resnet50", 0.5) == [32, 128, 256, 512, 1024]
    n_wide = sum(p.numel() for p in wide.encoder.parameters())
    n_narrow = sum(p.numel() for p in narrow.encoder.parameters())
    assert n_narrow < n_wide / 12  # conv weights scale with w²
    disp = narrow(torch.rand(2, 3, 64, 64))
    assert disp.shape == (2, 1, 64, 64) and bool(((disp > 0) & (disp < 1)).all())
    feats = narrow.encoder(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == narrow.encoder.channels


def test_narrow_pose_net_runs_and_keeps_the_image_width() -> None:
    net = PoseNet(width=0.25, image_size=(64, 64))
    assert net.encoder.channels[-1] == 128
    out = net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    # the fixed intrinsics use the *image* width (64 px), not the channel multiplier
    k = net.fixed_intrinsics(1, 64, 64)
    assert float(k[0, 0, 2]) == pytest.approx(31.5)
    assert out["uncertainty"].shape == (1, 1, 64, 64)


def test_config_width_reaches_the_factory() -> None:
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo" / "dagan++-demo.yaml")
    assert cfg.model_params.depth_params.width == 0.25
    assert build_depth_net(cfg).encoder.channels == [16, 16, 32, 64, 128]
    assert build_pose_net(cfg).encoder.channels[-1] == 128


def test_imagenet_weights_need_standard_width() -> None:
    from dagan.errors import CheckpointError

    with pytest.raises(CheckpointError, match="standard-width"):
        FaceDepthNet(width=0.5).encoder.load_imagenet_weights(ResNet("resnet18").state_dict())
