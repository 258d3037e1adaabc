"""FDN++ depth training: run folder, checkpoints, exact resume, learning on synthetic heads, errors."""

from __future__ import annotations

import copy
import signal
import sys
from pathlib import Path

import pytest
import torch

from dagan.atomic_files import atomic_torch_save
from dagan.checkpoints.depth import load_depth_models, load_depth_net
from dagan.checkpoints.format import load_checkpoint, save_checkpoint
from dagan.config import load_config
from dagan.data.synthetic import render_video, write_synthetic_dataset
from dagan.errors import CheckpointError, InputError
from dagan.eval.depth_metrics import mean_depth_metrics
from dagan.infer.depth_export import DepthPredictor
from dagan.losses import min_reprojection_error
from dagan.train.depth_trainer import DepthTrainer, FramePairDataset, train_depth
from dagan.train.run import (
    TrainingRun,
    check_resume_compatible,
    default_run_dir,
    image_grid,
    read_metrics,
)
from dagan.train.sampling import StreamBatchSampler

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny" / "dagan++-64.yaml"
LEARN_STEPS = 200
#: Held-out heads for the relief check: write_synthetic_dataset derives its clip seeds with SeedSequence,
#: so these small seeds never occur in the training set.
HELD_OUT_HEADS = (999, 1000, 1001, 1002)


def tiny_config(**train: object):
    cfg = load_config(TINY)
    cfg.depth_train_params.frame_gap = 4  # enough parallax at 64² for depth to matter (see the benchmark)
    cfg.depth_train_params.log_freq = 1
    for key, value in train.items():
        setattr(cfg.depth_train_params, key, value)
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, videos=6, frames=12, size=64, seed=0, test_fraction=0.0, video_format="png")
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path, kind="depth")
    return {f"{m}.{k}": v for m, sd in ckpt["modules"].items() for k, v in sd.items()}


# --------------------------------------------------------------------------- run infrastructure


def test_run_folder_layout_checkpoints_and_visuals(data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(visual_freq=2, checkpoint_freq=2)
    res = train_depth(cfg, data, out=tmp_path / "run", max_steps=3, show_progress=False, echo=False)
    run = tmp_path / "run"
    assert res.run_dir == run and res.step == 3
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "log.txt", "metrics.jsonl", "checkpoints", "visuals",
                                               "tensorboard"}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest.pt", "step-00000002.pt", "step-00000003.pt"]
    assert load_config(run / "config.yaml").depth_train_params.frame_gap == 4
    assert list((run / "tensorboard").iterdir()), "no TensorBoard events written"
    visuals = sorted(p.name for p in (run / "visuals").iterdir())
    assert visuals == ["step-00000002-train.png", "step-00000003-train.png"]
    from PIL import Image

    grid = Image.open(run / "visuals" / visuals[0])
    # 6 columns (frame, source, disparity, uncertainty, reconstruction, auto-mask) × 4 rows of 64² + 2 px gaps
    assert grid.size == (6 * 64 + 7 * 2, 4 * 64 + 5 * 2)
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == [1, 2, 3]
    assert "FDN++ depth training" in (run / "log.txt").read_text()
    # the checkpoint is self-describing: the depth net loads without a config
    net = load_depth_net(run / "checkpoints" / "latest.pt")
    assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    # a second fresh run into the same folder is refused instead of mixing runs
    with pytest.raises(InputError, match="already holds checkpoints"):
        train_depth(cfg, data, out=run, max_steps=1, show_progress=False, echo=False)


def _optimizer_moments(path: Path) -> list[torch.Tensor]:
    state = load_checkpoint(path, kind="depth")["optimizers"]["adam"]["state"]
    return [st[k] for _, st in sorted(state.items()) for k in ("exp_avg", "exp_avg_sq")]


def _assert_same_training_state(a_path: Path, b_path: Path) -> None:
    """Bit-identical weights and Adam moments, same step and learning rate."""
    a, b = _weights(a_path), _weights(b_path)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    assert all(torch.equal(x, y) for x, y in zip(_optimizer_moments(a_path), _optimizer_moments(b_path)))
    ca, cb = load_checkpoint(a_path), load_checkpoint(b_path)
    assert ca["step"] == cb["step"] and ca["schedulers"]["lr"] == cb["schedulers"]["lr"]


def test_resume_continues_exactly(data: Path, tmp_path: Path) -> None:
    """N+M steps in one go == N steps, resume, M steps: bit for bit (weights, optimizer moments and step)."""
    cfg = tiny_config(checkpoint_freq=100, batch_size=2)
    one = train_depth(cfg, data, out=tmp_path / "one", max_steps=4, show_progress=False, echo=False)
    train_depth(cfg, data, out=tmp_path / "two", max_steps=2, show_progress=False, echo=False)
    two = train_depth(cfg, data, resume=tmp_path / "two" / "checkpoints" / "latest.pt", max_steps=4,
                      show_progress=False, echo=False)
    assert two.run_dir == tmp_path / "two" and two.step == 4 and not two.stopped_early
    _assert_same_training_state(one.checkpoint, two.checkpoint)
    # and the weights did move (the comparison is not trivially true)
    a, first = _weights(one.checkpoint), _weights(tmp_path / "two" / "checkpoints" / "step-00000002.pt")
    assert max(float((a[k].double() - first[k].double()).abs().max()) for k in a) > 1e-4
    assert [r["step"] for r in read_metrics(tmp_path / "two")] == [1, 2, 3, 4]
    assert [r["loss/total"] for r in read_metrics(tmp_path / "two")] == [
        r["loss/total"] for r in read_metrics(tmp_path / "one")]
    with pytest.raises(InputError, match="already at step 4, the end of training"):
        train_depth(cfg, data, resume=two.checkpoint, max_steps=4, show_progress=False, echo=False)


def test_ctrl_c_saves_a_checkpoint_to_resume_exactly(data: Path, tmp_path: Path) -> None:
    """Ctrl-C (a real SIGINT) lets the step in progress finish, writes a checkpoint, raises KeyboardInterrupt;
    resuming from latest.pt ends bit-identical to an uninterrupted run. A second Ctrl-C quits at once.

    The SIGINT is sent from ``clock``, which the loop reads when it starts and after each step: on its third
    read, i.e. as step 2 ends."""
    cfg = tiny_config(checkpoint_freq=100, batch_size=2)

    def ctrl_c_on_read(n: int, times: int = 1):  # noqa: ANN202
        reads = []

        def clock() -> float:
            reads.append(n)
            if len(reads) == n:
                for _ in range(times):
                    signal.raise_signal(signal.SIGINT)
            return 0.0
        return clock

    one = train_depth(cfg, data, out=tmp_path / "one", max_steps=4, show_progress=False, echo=False)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_depth(cfg, data, out=tmp_path / "two", max_steps=4, show_progress=False, echo=False,
                    clock=ctrl_c_on_read(3))
    assert signal.getsignal(signal.SIGINT) is handler  # put back
    latest = tmp_path / "two" / "checkpoints" / "latest.pt"
    assert load_checkpoint(latest)["step"] == 2
    log = (tmp_path / "two" / "log.txt").read_text()
    assert f"stopped at step 2 of 4 (Ctrl-C); resume with --resume {latest}" in log
    two = train_depth(cfg, data, resume=latest, max_steps=4, show_progress=False, echo=False)
    _assert_same_training_state(one.checkpoint, two.checkpoint)

    with pytest.raises(KeyboardInterrupt):
        train_depth(cfg, data, out=tmp_path / "three", max_steps=4, show_progress=False, echo=False,
                    clock=ctrl_c_on_read(2, times=2))
    assert not list((tmp_path / "three" / "checkpoints").iterdir())  # the second Ctrl-C did not wait to save
    assert signal.getsignal(signal.SIGINT) is handler


def test_resume_with_a_different_architecture_is_refused(data: Path, tmp_path: Path) -> None:
    cfg = tiny_config()
    trainer = DepthTrainer(cfg)
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, kind="depth", config=cfg.to_dict(),
                    modules={"depth_net": trainer.depth_net, "pose_net": trainer.pose_net},
                    optimizers={"adam": trainer.optimizer}, schedulers={"lr": trainer.scheduler}, step=1)
    fdn = copy.deepcopy(cfg)
    fdn.model_params.depth_params.uncertainty = False
    with pytest.raises(CheckpointError, match=r"different 'model_params\.depth_params\.uncertainty'"):
        train_depth(fdn, data, out=tmp_path / "r", resume=ckpt, max_steps=3, show_progress=False, echo=False)
    big = copy.deepcopy(cfg)
    big.model_params.depth_params.backbone = "resnet50"
    with pytest.raises(CheckpointError, match="backbone"):
        train_depth(big, data, resume=ckpt, max_steps=3, show_progress=False, echo=False)
    # a reenactment checkpoint is not a depth run to resume
    save_checkpoint(tmp_path / "re.pt", kind="reenactment", config=cfg.to_dict(),
                    modules={"depth_net": trainer.depth_net})
    with pytest.raises(CheckpointError, match="expected a depth checkpoint"):
        train_depth(cfg, data, resume=tmp_path / "re.pt", max_steps=3, show_progress=False, echo=False)
    assert not (tmp_path / "r").exists()


def test_bad_data_folders(tmp_path: Path) -> None:
    cfg = tiny_config()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos or frame folders"):
        train_depth(cfg, tmp_path / "empty", out=tmp_path / "run", max_steps=1, show_progress=False)
    with pytest.raises(InputError, match="not found"):
        train_depth(cfg, tmp_path / "missing", out=tmp_path / "run", max_steps=1, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_sampler_batches_depend_only_on_seed_and_step() -> None:
    full = StreamBatchSampler(10, 3, seed=5, start=0, end=8, hflip=True, tflip=True)
    tail = StreamBatchSampler(10, 3, seed=5, start=4, end=8, hflip=True, tflip=True)
    assert list(full)[4:] == list(tail)
    first_epoch = [i for b in list(full)[:4] for i, _, _ in b][:10]
    assert sorted(first_epoch) == list(range(10))  # every pair once per epoch
    other = StreamBatchSampler(10, 3, seed=6, start=0, end=8)
    assert [b for b in other] != [[(i, False, False) for i, _, _ in b] for b in full]
    assert any(h for b in full for _, h, _ in b) and any(t for b in full for _, _, t in b)


def test_dataset_pairs_and_flips(data: Path) -> None:
    ds = FramePairDataset(data, 64, frame_gap=3)
    assert len(ds) == 6 * (12 - 3)
    item = ds[0]
    flipped = ds[(0, True, True)]
    assert torch.equal(flipped["target"], item["source"].flip(-1))
    assert item["target"].shape == (3, 64, 64) and item["target"].min() >= 0 and item["target"].max() <= 1


def test_run_helpers(tmp_path: Path) -> None:
    path = default_run_dir("configs/my config.yaml", root=tmp_path)
    assert " " not in str(path.relative_to(tmp_path)) and path.name.startswith("my-config-")
    grid = image_grid({"rgb": torch.rand(3, 3, 16, 16), "map": torch.rand(3, 1, 8, 8)}, max_rows=2)
    assert grid.shape == (3, 2 * 16 + 3 * 2, 2 * 16 + 3 * 2) and grid.min() >= 0 and grid.max() <= 1
    with pytest.raises(CheckpointError, match="num_scales"):
        check_resume_compatible({"m": {"num_scales": 4}}, {"m": {"num_scales": 3}}, ["m"], "x.pt")


def test_run_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When tensorboard is not installed, scalars and images still go to metrics.jsonl and visuals/."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with TrainingRun.create(out=tmp_path / "r", echo=False) as run:
        assert not run.tensorboard_available
        run.scalars(5, {"loss": 1.5})
        run.images(5, "train", {"frame": torch.rand(2, 3, 8, 8)})
    assert read_metrics(tmp_path / "r") == [{"step": 5, "loss": 1.5}]
    assert (tmp_path / "r" / "visuals" / "step-00000005-train.png").is_file()
    assert "tensorboard is not installed" in (tmp_path / "r" / "log.txt").read_text()
    assert not (tmp_path / "r" / "tensorboard").exists()


def test_load_depth_net_sources(tmp_path: Path) -> None:
    cfg = tiny_config()
    trainer = DepthTrainer(cfg)
    save_checkpoint(tmp_path / "re.pt", kind="reenactment", config=cfg.to_dict(),
                    modules={"depth_net": trainer.depth_net, "generator": torch.nn.Linear(1, 1)})
    models = load_depth_models(tmp_path / "re.pt")
    assert models.pose_net is None and models.kind == "reenactment"
    x = torch.rand(1, 3, 64, 64)
    trainer.depth_net.eval()
    assert torch.equal(models.depth_net(x), trainer.depth_net(x))
    save_checkpoint(tmp_path / "fomm.pt", kind="reenactment", config=cfg.to_dict(),
                    modules={"generator": torch.nn.Linear(1, 1)})
    with pytest.raises(CheckpointError, match="without a depth net"):
        load_depth_net(tmp_path / "fomm.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_depth_net(tmp_path / "junk.pt")


# --------------------------------------------------------------------------- learning


def _pairs(ds: FramePairDataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i] for i in range(0, len(ds), max(len(ds) // n, 1))][:n]
    return torch.stack([i["target"] for i in items]), torch.stack([i["source"] for i in items])


def _reprojection_error(ckpt: Path, cfg, target: torch.Tensor, source: torch.Tensor) -> float:
    """Monodepth2's objective over all pixels: mean of min(warped error, un-warped error) at scale 0."""
    trainer = DepthTrainer(cfg)
    trainer.load_state_dict(load_checkpoint(ckpt, kind="depth"), ckpt)
    model = trainer.model.eval()
    with torch.no_grad():
        recon = model(target, source)["reconstruction"]
        err, _ = min_reprojection_error(target, recon, source)
        identity, _ = min_reprojection_error(target, source, use_automask=False)
    return float(torch.minimum(err, identity).mean())


def _relative_structure(ckpt: Path, clips: list) -> float:
    """Relative-structure error of the checkpoint's depth on the head pixels, averaged over the clips."""
    predictor = DepthPredictor(load_depth_models(ckpt))
    errors = [mean_depth_metrics(predictor.depth(predictor.disparity(c.frames)), c.depth, c.mask)["rel_structure"]
              for c in clips]
    return sum(errors) / len(errors)


def learning_config():
    """The tiny config with the narrow (width 0.25) depth/pose encoders of the bundled demo and batch 8.

    At equal CPU time this learns far more reliably than the full-width ResNet-18 at batch 4 (~175 vs ~265 ms
    a step here): after 150 full-width steps the held-out relief was anywhere from clearly learned to barely
    above the untrained net's depending on the CPU's float kernels (AVX-512, AVX2 or the generic ones round
    differently, and the run diverges from there), which made the test pass on one machine and fail on another.
    """
    cfg = tiny_config(checkpoint_freq=LEARN_STEPS, batch_size=8)
    cfg.model_params.depth_params.width = 0.25
    return cfg


@pytest.mark.slow
def test_training_lowers_photometric_error_and_learns_face_relief(data: Path, tmp_path: Path) -> None:
    """200 steps (about 35 s on one idle core) on 6 synthetic clips: the photometric error on training pairs
    drops, and the relief of held-out heads (seeds not in the training set) is clearly better than the
    untrained net's, which is close to flat (1.0).

    The thresholds hold with a margin on any x86-64 CPU: measured with ATEN_CPU_CAPABILITY=default, avx2 and
    avx512, also with oneDNN limited to its AVX2 / SSE4.1 kernels (ONEDNN_MAX_CPU_ISA, as on an AVX2-only or
    an old CPU), and over training seeds 0-2 (numbers next to each assertion).
    """
    cfg = learning_config()
    torch.manual_seed(cfg.depth_train_params.seed)
    init = tmp_path / "init.pt"
    atomic_torch_save(DepthTrainer(cfg).state_dict(), init)  # the initialisation train_depth starts from
    res = train_depth(cfg, data, out=tmp_path / "run", max_steps=LEARN_STEPS, show_progress=False, echo=False)
    target, source = _pairs(FramePairDataset(data, 64, frame_gap=4), 12)
    before = _reprojection_error(init, cfg, target, source)
    after = _reprojection_error(res.checkpoint, cfg, target, source)
    # after / before measured 0.37-0.49 across the CPU settings (0.36-0.68 over training seeds 0-2); untrained: 1
    assert after < 0.8 * before, (before, after)
    held_out = [render_video(seed, frames=8, size=64) for seed in HELD_OUT_HEADS]
    untrained, trained = _relative_structure(init, held_out), _relative_structure(res.checkpoint, held_out)
    # trained measured 0.59-0.66 across the CPU settings, untrained 0.98 (over training seeds 0-2: trained
    # 0.45-0.66, untrained 0.93-0.98, untrained - trained ≥ 0.31)
    assert trained < 0.8 and trained < untrained - 0.2, (untrained, trained)
