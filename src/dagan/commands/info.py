"""``dagan info --config CFG [--json]``: parameter counts per module, resolution, arch, attention scales."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from dagan.config import OFFICIAL_DAGAN_ARCHS, Config, load_config

NAME = "info"
HELP = "print the parameter count of every module, the resolution, the arch and the attention scales"
#: Argument names of what the command reads and writes: dagan.cli refuses any output that would
#: overwrite an input (dagan.protected_inputs). "NAME/file" is a file written inside folder NAME.
INPUTS: tuple[str, ...] = ("config",)
OUTPUTS: tuple[str, ...] = ()

#: the paper's count for the whole DaGAN++ (generator + keypoint detector + discriminator), TPAMI §IV-A
PAPER_DAGAN_PP_PARAMS = 85_200_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (e.g. configs/dagan++-vox-256.yaml)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def attention_scales(cfg: Config, generator: Any = None) -> list[dict[str, Any]]:
    """Where the generator attends: level, feature size, channels, query and key/value token counts (for
    DaGAN++, read from the built ``generator``: its levels, channels and key/value pooling)."""
    gp = cfg.model_params.generator_params
    res = cfg.resolution
    if cfg.arch in OFFICIAL_DAGAN_ARCHS:
        size = res // 2**gp.num_down_blocks  # each encoder block halves (floor)
        if generator is not None:  # the built model's bottleneck width
            channels = generator.channels[gp.num_down_blocks]
        else:
            channels = min(gp.max_features, gp.block_expansion * 2**gp.num_down_blocks)
        return [
            {
                "level": gp.num_down_blocks,
                "size": size,
                "channels": channels,
                "query_tokens": size * size,
                "kv_tokens": size * size,
                "query": "source depth",
                "key_value": "warped appearance",
            }
        ]
    if cfg.arch != "dagan++" or generator is None:
        return []
    rows = []
    for level in generator.attention_scales:  # the built model's own geometry, not a re-derivation
        size = res // 2**level  # each encoder block halves (floor)
        factor = generator.attention[str(level)].key_factor(size, size)
        rows.append(
            {
                "level": level,
                "size": size,
                "channels": generator.channels[level],
                "query_tokens": size * size,
                "kv_tokens": math.ceil(size / factor) ** 2,
                "query": "warped appearance",
                "key_value": "source depth",
            }
        )
    return rows


def model_info(cfg: Config) -> dict[str, Any]:
    from dagan.models.factory import build_pose_net, build_reenactment_models, count_parameters

    models = build_reenactment_models(cfg)
    gen = count_parameters(models.generator)
    kp = count_parameters(models.kp_detector)
    disc = count_parameters(models.discriminator)
    params = {
        "generator": gen,
        "dense_motion": count_parameters(models.generator.dense_motion_network),
        "kp_detector": kp,
        "discriminator": disc,
        "generator+kp_detector+discriminator": gen + kp + disc,
        "depth_net": count_parameters(models.depth_net),
        "pose_net": count_parameters(build_pose_net(cfg)) if models.depth_net is not None else 0,
    }
    info: dict[str, Any] = {
        "arch": cfg.arch,
        "resolution": cfg.resolution,
        "num_kp": cfg.model_params.common_params.num_kp,
        "depth_backbone": cfg.model_params.depth_params.backbone if models.depth_net is not None else None,
        "parameters": params,
        "attention": attention_scales(cfg, models.generator),
    }
    if cfg.arch == "dagan++":
        info["paper_parameters"] = {"generator+kp_detector+discriminator": PAPER_DAGAN_PP_PARAMS}
    return info


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    info = model_info(cfg)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"arch {info['arch']}  resolution {info['resolution']}  keypoints {info['num_kp']}  "
        f"depth {info['depth_backbone'] or 'none'}"
    )
    print("parameters:")
    for name, count in info["parameters"].items():
        print(f"  {name:<38} {count:>12,}")
    if "paper_parameters" in info:
        paper = info["paper_parameters"]["generator+kp_detector+discriminator"]
        print(f"  {'(paper: DaGAN++ total)':<38} {paper:>12,}  see README 'Deviations from the paper'")
    if info["attention"]:
        print("attention:")
        for row in info["attention"]:
            print(
                f"  level {row['level']}: {row['size']}x{row['size']}x{row['channels']}  queries "
                f"{row['query_tokens']} ({row['query']}), keys/values {row['kv_tokens']} ({row['key_value']})"
            )
    return 0
