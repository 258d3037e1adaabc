"""`dagan bench`: the table and the JSON hold every stage of every arch, the stages account for the end-to-end
time, repeats alternate, the sized configs follow the shipped 512² config, instrumenting a model leaves its
outputs and classes untouched, and bad options end with one error line. Nothing here asserts a duration."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

from dagan.bench.report import STAGE_COLUMNS
from dagan.bench.stages import StageClock, instrument
from dagan.bench.suite import schedule, sized_config
from dagan.cli import main
from dagan.config import load_config
from dagan.models.factory import build_reenactment_models

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [CONFIGS / "tiny" / f"{arch}-64.yaml" for arch in ("dagan++", "dagan", "dagan-spade", "fomm")]
SPREAD = {"median", "min", "max", "values"}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, dict]:
    """One run of the CLI on the four tiny configs: (stdout, the --markdown file, the --json record)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["bench", "--configs", *map(str, TINY), "--devices", "cpu", "--batch-sizes", "2", "--frames", "2",
            "--warmup", "0", "--repeats", "1", "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md")]
    stdout = io.StringIO()  # capsys is function-scoped; the run is shared by the tests below
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    record = json.loads((out / "bench.json").read_text())
    return stdout.getvalue(), (out / "bench.md").read_text(), record


def test_the_table_names_the_machine_and_has_every_stage(bench_run: tuple[str, str, dict]) -> None:
    printed, markdown_file, _ = bench_run
    assert markdown_file == printed
    lines = printed.splitlines()
    assert lines[0].startswith("dagan bench on ")
    assert f"torch {torch.__version__}" in lines[0] and f"{torch.get_num_threads()} threads" in lines[0]
    table = [line for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:6] == ["arch", "size", "device", "precision", "batch", "once (ms)"]
    assert header[6:-3] == list(STAGE_COLUMNS)
    assert header[-3:] == ["end to end (ms/frame)", "frames/s", "peak memory (MB)"]
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}  # fmt: skip
    assert list(rows) == ["dagan++", "dagan", "dagan-spade", "fomm"]
    assert rows["fomm"]["depth"] == rows["fomm"]["attention"] == "–"  # no depth branch
    for arch, row in rows.items():
        assert row["size"] == "64" and row["device"] == "cpu" and row["precision"] == "fp32" and row["batch"] == "2"
        filled = [c for c in STAGE_COLUMNS if not (arch == "fomm" and c in ("depth", "attention"))]
        assert all(row[c] != "–" for c in filled), row
    assert re.findall(r"L\d", rows["dagan++"]["warp"]) == ["L0", "L1", "L2", "L3"]  # per level, finest first
    assert "(L2)" in rows["dagan"]["attention"]
    assert "image" in rows["dagan-spade"]["warp"]


def test_the_json_has_every_stage_and_figure(bench_run: tuple[str, str, dict]) -> None:
    record = bench_run[2]
    assert set(record) == {"machine", "settings", "results", "order", "ratios", "skipped"}
    assert set(record["machine"]) == {"cpu", "cpu_cores", "torch", "threads", "cuda", "python", "dagan"}
    assert record["settings"]["frames"] == 2 and record["settings"]["repeats"] == 1
    assert record["order"] == [[0, 0], [0, 1], [0, 2], [0, 3]] and record["skipped"] == []
    common = {"decode", "detect", "crop", "keypoints", "motion", "decoder", "convert", "paste", "encode"}
    levels = {
        "dagan++": {"depth", *(f"{kind} L{i}" for kind in ("warp", "attention") for i in range(4))},
        "dagan": {"depth", "warp L2", "attention L2"},
        "dagan-spade": {"depth", "warp L2", "attention L2", "warp image"},
        "fomm": {"warp L2"},
    }
    for result in record["results"]:
        assert set(result) == {
            "arch", "size", "config", "device", "precision", "batch_size", "frames", "once_ms", "stages_ms_per_frame",
            "end_to_end_ms_per_frame", "frames_per_second", "peak_memory_mb", "memory",
        }  # fmt: skip
        stages = result["stages_ms_per_frame"]
        assert set(stages) == common | levels[result["arch"]], result["arch"]
        figures = [*stages.values(), result["once_ms"], result["end_to_end_ms_per_frame"], result["peak_memory_mb"]]
        assert all(set(f) == SPREAD and len(f["values"]) == 1 and f["median"] >= 0 for f in figures)
        # every stage lies inside the end-to-end wall time (CPU: one instrumented pass gives both)
        assert sum(s["median"] for s in stages.values()) <= result["end_to_end_ms_per_frame"]["median"] * (1 + 1e-9)
        assert result["frames"] == 2 and result["memory"] == "rss" and result["peak_memory_mb"]["median"] > 0


def test_ratios_to_dagan_are_the_per_repeat_quotients(bench_run: tuple[str, str, dict]) -> None:
    printed, _, record = bench_run
    e2e = {r["arch"]: r["end_to_end_ms_per_frame"]["values"][0] for r in record["results"]}
    ratios = {r["arch"]: r for r in record["ratios"]}
    assert set(ratios) == {"dagan++", "dagan-spade", "fomm"}  # every arch but the reference
    for arch, ratio in ratios.items():
        assert ratio["reference"] == "dagan" and ratio["size"] == 64 and ratio["batch_size"] == 2
        assert ratio["end_to_end"]["values"] == [pytest.approx(e2e[arch] / e2e["dagan"])]
        assert f"- {arch} / dagan, 64 cpu fp32 batch 2: {ratio['end_to_end']['median']:.2f}×" in printed


def test_the_command_offers_every_precision_and_detector() -> None:
    """The command spells these out (building the CLI imports neither torch nor the detectors)."""
    from dagan.commands import bench
    from dagan.faces import BACKENDS
    from dagan.infer.engine import PRECISIONS

    assert bench.PRECISIONS == PRECISIONS
    assert bench.DETECTORS[1:] == BACKENDS and bench.DETECTORS[0] == "auto"


def test_repeats_alternate_the_order() -> None:
    assert schedule(3, 3) == [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0), (2, 0), (2, 1), (2, 2)]


def test_sized_configs_follow_the_shipped_ones() -> None:
    def model(cfg):  # noqa: ANN001, ANN202 - the model-defining part of a config
        params = cfg.to_dict()["model_params"]
        params["depth_params"].pop("checkpoint")  # where a trained depth net would come from
        return params, cfg.resolution

    assert model(sized_config("dagan++", 512, CONFIGS)) == model(load_config(CONFIGS / "dagan++-hdtf-512.yaml"))
    for arch in ("dagan++", "dagan", "dagan-spade", "fomm"):
        shipped = load_config(CONFIGS / f"{arch}-vox-256.yaml")
        assert model(sized_config(arch, 256, CONFIGS)) == model(shipped)


def test_instrumenting_leaves_the_model_unchanged() -> None:
    """Timed and untimed predictions are identical, and the wrappers are gone afterwards."""
    torch.manual_seed(0)
    cfg = load_config(TINY[2])  # dagan-spade: warps, image warp and attention
    models = build_reenactment_models(cfg, discriminator=False).eval()
    gen = models.generator
    image = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        disparity = models.disparity(image)
        kp_source = models.kp_detector(image[:1], disparity[:1])
        kp_driving = models.kp_detector(image, disparity)
        cache = gen.encode_source(image[:1], disparity[:1])
        plain = gen.predict(image[:1], cache, kp_driving, kp_source)
        clock = StageClock(torch.device("cpu"))
        with instrument(models, clock, 64):
            assert "motion" in vars(gen)
            timed = gen.predict(image[:1], cache, kp_driving, kp_source)
    assert torch.equal(plain, timed)
    assert set(clock.totals) == {"motion", "warp L2", "warp image", "attention L2", "decoder"}
    assert not {"motion", "synthesize", "warp_features", "forward"} & (set(vars(gen)) | set(vars(models.kp_detector)))


@pytest.mark.parametrize(
    "argv",
    [
        ["--archs", "nope"],
        ["--sizes", "300"],
        ["--archs", "dagan", "--sizes", "64"],  # too small for its keypoint detector
        ["--frames", "0"],
        ["--devices", "nonsense"],
        ["--configs", str(TINY[0]), "--devices", "cpu", "--precisions", "fp16"],  # fp16 needs CUDA
        ["--configs", str(TINY[0]), "--archs", "fomm"],
        ["--configs", "missing.yaml"],
        ["--configs", str(TINY[0]), "--json", str(TINY[0])],  # would overwrite an input
    ],
)
def test_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["bench", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dagan: error: "), captured.err
    assert captured.out == ""
