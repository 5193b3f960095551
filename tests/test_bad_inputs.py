"""Issue 14: every bad input gets one line naming the argument or file, nothing is silently ignored or lost.

One test (or more) per item of the issue, numbered as there; each fails on the code before the fix.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_train_cli import ROOT, TINY, make_folder

import cbam
from cbam.cli import main
from cbam.engine import load_checkpoint, read_metrics
from cbam.experiments.config import load_config
from cbam.io.files import RunDirBusyError, atomic_write, run_lock

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))


def _one_line(err: str) -> str:
    """The stderr of a failed command: exactly one line, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("bad") / "tiny", (8, 3))


def _train(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--attention", "none", "--workers", "0", "--out", str(out), *TINY, *extra]


# 1. --resume never ignores a changed value -------------------------------------------------------

def test_1_resume_refuses_changed_values_and_keeps_config_yaml(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train(data, run, "--epochs", "1", "--set", "schedule=cosine")) == 0
    saved = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(_train(data, run, "--epochs", "1", "--set", "schedule=cosine", "--lr", "0.5", "--resume")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "lr=0.05 (asked 0.5)" in line and "start a new --out" in line
    assert main(_train(data, run, "--epochs", "4", "--set", "schedule=cosine", "--resume")) == 2
    assert "epochs=1 (asked 4) (a cosine schedule's length is fixed" in _one_line(capsys.readouterr().err)
    assert (run / "config.yaml").read_text() == saved  # nothing recorded that was not used
    # a step schedule does not depend on the run's length: the resume extends it, as a longer run would
    step = tmp_path / "step"
    assert main(_train(data, step, "--epochs", "1", "--set", "schedule=step")) == 0
    assert main(_train(data, step, "--epochs", "2", "--set", "schedule=step", "--resume")) == 0
    assert [r["epoch"] for r in read_metrics(step)] == [1, 2]
    assert yaml.safe_load((step / "config.yaml").read_text())["epochs"] == 2


# 2. model options belong to a model ---------------------------------------------------------------

def test_2_another_model_than_the_recipes_drops_its_options_with_a_warning():
    with pytest.warns(UserWarning, match=r"sets model_kwargs \['stem_width', 'widths'\], which model 'mobilenet_v1'"):
        cfg = load_config("embedded", model="mobilenet_v1")
    assert cfg.model_kwargs == {}
    assert load_config("embedded", model="resnet34").model_kwargs["widths"] == [16, 32, 64, 128]  # a ResNet keeps them


def test_2_bad_model_options_are_named():
    with pytest.raises(ValueError, match=r"widths must be 4 positive integers \(one per stage\), got \(8, 8, 8\)"):
        cbam.create_model("resnet18", widths=(8, 8, 8))
    with pytest.raises(ValueError, match=r"model 'mobilenet_v1' has no option\(s\) \['widths'\]; its options are"):
        cbam.create_model("mobilenet_v1", widths=(8, 8, 8, 8))


# 3. eval never builds other data ------------------------------------------------------------------

def test_3_eval_refuses_missing_training_data_instead_of_building_it(tmp_path, capsys):
    model = cbam.create_model("resnet18", num_classes=10, small_input=True, widths=(16,) * 4, stem_width=16)
    missing = tmp_path / "gone"
    cbam.save_pretrained(model, tmp_path / "m", data=f"embedded:{missing}")
    assert main(["eval", "--weights", str(tmp_path / "m")]) == 2
    assert f"embedded data folder '{missing}' does not exist" in _one_line(capsys.readouterr().err)
    assert not missing.exists()


# 4. one run per run directory ---------------------------------------------------------------------

def test_4_a_second_run_into_a_locked_directory_names_the_holder(data, tmp_path, capsys):
    run = tmp_path / "run"
    with run_lock(run):
        assert main(_train(data, run, "--epochs", "1")) == 2
        line = _one_line(capsys.readouterr().err)
        assert f"run directory '{run}' is in use by pid {os.getpid()}" in line
        with pytest.raises(RunDirBusyError):
            with run_lock(run):
                pass
    with run_lock(run):  # released on exit
        pass


def test_4_the_lock_of_a_killed_process_is_released(tmp_path):
    code = (f"from cbam.io.files import run_lock; import time\nwith run_lock({str(tmp_path)!r}):\n"
            "    print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirBusyError, match=f"in use by pid {proc.pid}"):
        with run_lock(tmp_path):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with run_lock(tmp_path):  # the kernel dropped the lock with the process
        pass


# 5. one line where a traceback was ----------------------------------------------------------------

def test_5_malformed_yaml_names_the_file_or_the_flag(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert f"config '{bad}' is not valid YAML (line 2, column 1)" in _one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["train", "--set", "model_kwargs={a: [}"])
    assert "argument --set: the value of model_kwargs is not valid YAML" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.parametrize("override, message", [
    ("model_kwargs=5", "model_kwargs must be a mapping of option names to values"),
    ("model_kwargs.bogus=1", "model 'resnet18' has no option(s) ['bogus']"),
    ("model_kwargs.stem_width=wide", "model 'resnet18' with model_kwargs"),
])
def test_5_bad_model_kwargs_are_one_line(override, message, capsys):
    assert main(["train", "--set", override]) == 2
    assert message in _one_line(capsys.readouterr().err)


def test_5_out_a_file_under_a_file_or_unwritable(data, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, f"--out '{afile}' is a file, not a folder"),
                         (afile / "sub", f"--out '{afile / 'sub'}' cannot be created: '{afile}' is a file"),
                         (Path("/proc/cbam-run"), "--out '/proc/cbam-run' cannot be created")):
        assert main(_train(data, out, "--epochs", "1")) == 2
        assert message in _one_line(capsys.readouterr().err)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        assert main(_train(data, locked / "run", "--epochs", "1")) == 2
        assert "cannot be created: Permission denied" in _one_line(capsys.readouterr().err)


def _voc(root: Path, xml: str) -> Path:
    base = root / "VOC2007"
    (base / "Annotations").mkdir(parents=True)
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    (base / "Annotations" / "000001.xml").write_text(xml)
    return base / "Annotations" / "000001.xml"


@pytest.mark.parametrize("xml, message", [
    ("<annotation><size>", "malformed XML"),
    ("<annotation><size><width>8</width><height>8</height></size><object><name>dog</name></object></annotation>",
     "object 1 (dog) has no <bndbox>"),
    ("<annotation><size><width>8</width><height>8</height></size><object><name>dog</name><bndbox><xmin>a</xmin>"
     "<ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object></annotation>",
     "object 1 (dog) <xmin> is 'a', expected a number"),
    ("<annotation><size><width>wide</width><height>8</height></size></annotation>",
     "<size><width> is 'wide', expected a positive integer"),
])
def test_5_malformed_voc_xml_is_named(xml, message, tmp_path):
    from cbam.data import VOCDetectionDataset

    path = _voc(tmp_path, xml)
    with pytest.raises(ValueError, match=f"^{path}: ") as info:
        VOCDetectionDataset(tmp_path, ["2007"], "test")
    assert message in str(info.value)


def test_5_truncated_weights_are_one_line(tmp_path, capsys):
    model = cbam.create_model("resnet18", num_classes=3, small_input=True, widths=(16,) * 4, stem_width=16)
    folder = cbam.save_pretrained(model, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert main(["export", "--weights", str(folder), "--format", "pt2", "--out", str(tmp_path / "m.pt2")]) == 2
    assert f"{weights} is not a readable safetensors file (truncated or damaged" in _one_line(capsys.readouterr().err)
    pth = tmp_path / "r.pth"
    torch.save(model.state_dict(), pth)
    pth.write_bytes(pth.read_bytes()[:5000])
    assert main(["convert", "--from", "official", str(pth), "--out", str(tmp_path / "c")]) == 2
    assert f"{pth} is not a readable PyTorch checkpoint (truncated or damaged" in _one_line(capsys.readouterr().err)


def test_5_convert_out_onto_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["convert", "--from", "official", "in.pth", "--out", str(afile)]) == 2
    assert f"--out '{afile}' is a file, not a folder" in _one_line(capsys.readouterr().err)


def _stop_in_epoch_2(monkeypatch, error: BaseException) -> None:
    """Make the second checkpoint write fail with ``error``, as Ctrl-C or a full disk would."""
    import cbam.engine.loop as loop

    calls = []
    real = loop.save_checkpoint

    def save(path, state):
        calls.append(path)
        if len(calls) == 2:
            raise error
        return real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", save)


def test_5_disk_full_is_one_line_naming_the_intact_checkpoint(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _stop_in_epoch_2(monkeypatch, OSError(errno.ENOSPC, "No space left on device", str(run / "checkpoint.pt")))
    assert main(_train(data, run, "--epochs", "3")) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"cbam train: error: disk full while writing {run / 'checkpoint.pt'}; ")
    assert f"{run / 'checkpoint.pt'} (epoch 1) is intact: run the same command with --resume" in line
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1


def test_5_ctrl_c_says_where_it_stopped_and_exits_130(data, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    _stop_in_epoch_2(monkeypatch, KeyboardInterrupt())
    assert main(_train(data, run, "--epochs", "3")) == 130
    line = _one_line(capsys.readouterr().err)
    assert line == (f"cbam train: interrupted in epoch 2 of 3; {run / 'checkpoint.pt'} (epoch 1) is intact: "
                    "run the same command with --resume to continue from it")


def _signal_a_run(data: Path, run: Path, signum: int) -> tuple[int, str]:
    """Start a long ``cbam train`` process, send it ``signum`` after its first checkpoint: (exit code, stderr)."""
    args = [sys.executable, "-m", "cbam", *_train(data, run, "--epochs", "50")]
    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def test_5_sigint_of_a_real_process_exits_130(data, tmp_path):
    code, err = _signal_a_run(data, tmp_path / "run", signal.SIGINT)
    assert code == 130
    assert "cbam train: interrupted in epoch" in _one_line(err) and "--resume" in err


# 6. compare / ablate check everything first -------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--attentions", "none", "bogus"], "unknown attention 'bogus'"),
    (["--data", "missing-folder"], "data folder 'missing-folder' does not exist"),
    (["--seeds", "0", "-1"], "seed must be an integer in [0, 2**32), got -1"),
])
def test_6_compare_validates_before_the_first_run(data, extra, message, tmp_path, capsys):
    args = ["compare", "--data", str(data), "--epochs", "1", "--workers", "0", "--out", str(tmp_path / "cmp"),
            "--set", "model_kwargs={small_input: true, widths: [16, 16, 16, 16], stem_width: 16}", *extra]
    assert main(args) == 2
    assert message in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "cmp" / "none").exists()  # nothing was trained


def test_6_compare_out_a_file(data, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["ablate", "--table", "1", "--data", str(data), "--out", str(afile)]) == 2
    assert f"--out '{afile}' is a file, not a folder" in _one_line(capsys.readouterr().err)


# 7. convert never overwrites a model folder silently ----------------------------------------------

def test_7_convert_refuses_an_existing_model_folder_without_force(tmp_path, capsys):
    model = cbam.create_model("resnet18", num_classes=3)
    folder = cbam.save_pretrained(model, tmp_path / "m")
    before = (folder / "model.safetensors").read_bytes()
    assert main(["convert", "--from", "official", "in.pth", "--out", str(folder)]) == 2
    assert "is not empty (it may hold a model folder); pass --force" in _one_line(capsys.readouterr().err)
    assert (folder / "model.safetensors").read_bytes() == before
    assert main(["convert", "--from", "official", "in.pth", "--out", str(folder), "--force"]) == 2
    assert "checkpoint 'in.pth' does not exist" in _one_line(capsys.readouterr().err)  # past the check


# 8. files get the umask's mode --------------------------------------------------------------------

def test_8_atomic_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        path = atomic_write(tmp_path / "b.txt", lambda tmp: tmp.write_text("x"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# 11. messages that name the file and what is wrong ------------------------------------------------

def test_11_paths_of_the_wrong_kind(tmp_path, capsys):
    afile = tmp_path / "afile.txt"
    afile.write_text("not a model")
    assert main(["train", "--data", str(afile)]) == 2
    assert f"data folder '{afile}' is a file, expected a folder" in _one_line(capsys.readouterr().err)
    assert main(["convert", "--from", "official", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert f"checkpoint '{tmp_path}' is a folder, expected a file" in _one_line(capsys.readouterr().err)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    assert main(["eval", "--weights", str(text)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{text} is not a PyTorch checkpoint" in line and "weights_only=False" not in line


def test_11_corrupt_config_json_is_named(tmp_path, capsys):
    folder = cbam.save_pretrained(cbam.create_model("resnet18", num_classes=3), tmp_path / "m")
    (folder / "config.json").write_text("{oops")
    assert main(["eval", "--weights", str(folder)]) == 2
    assert f"{folder / 'config.json'} is not valid JSON" in _one_line(capsys.readouterr().err)


def _coco(tmp_path: Path, annotations: list, categories: list | None = None) -> Path:
    (tmp_path / "images").mkdir()
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                                "annotations": annotations,
                                "categories": categories or [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    return path


@pytest.mark.parametrize("annotations, message", [
    ([{"id": 7, "image_id": 1, "category_id": 1}], "annotations entry 7 has no 'bbox'"),
    ([{"id": 7, "image_id": 1, "category_id": "1", "bbox": [0, 0, 2, 2]}],
     "unknown category_id '1'; valid ids are [1, 2] (it is a string; ids are integers)"),
    ([{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, "w", 2]}], "annotation 7 has bbox [0, 0, 'w', 2]"),
])
def test_11_coco_annotations_are_named(annotations, message, tmp_path):
    from cbam.data import CocoDetectionDataset

    path = _coco(tmp_path, annotations)
    with pytest.raises(ValueError, match=f"^{path}: ") as info:
        CocoDetectionDataset(tmp_path / "images", path)
    assert message in str(info.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"^{path} is not valid JSON"):
        CocoDetectionDataset(tmp_path / "images", path)


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "-1", "lr must be positive, got -1.0"),
    ("--threads", "0", "threads must be a positive integer, got 0"),
    ("--weight-decay", "nan", "weight_decay must be a number, got nan"),
])
def test_11_12_bad_numbers_name_the_argument(flag, value, message, capsys):
    assert main(["train", flag, value]) == 2
    assert message in _one_line(capsys.readouterr().err)


# 12. values that were silently accepted -----------------------------------------------------------

def test_12_profile_input_size_zero_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--model", "resnet18", "--image-size", "0"])
    assert "argument --image-size: expected a positive integer, got '0'" in capsys.readouterr().err


def test_12_resume_of_a_misspelt_or_finished_run(data, tmp_path, capsys):
    assert main(_train(data, tmp_path / "typo", "--epochs", "1", "--resume")) == 2
    assert "holds no checkpoint to resume (is --out misspelt?)" in _one_line(capsys.readouterr().err)
    run = tmp_path / "run"
    assert main(_train(data, run, "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(_train(data, run, "--epochs", "1", "--resume")) == 0
    assert f"'{run}' already finished its 1 epoch; nothing to train" in capsys.readouterr().err


def test_12_gradcam_localization_checks_boxes_before_rendering(data, tmp_path, capsys):
    assert main(["gradcam", "--model", "resnet18", "--data", str(data), "--localization", str(tmp_path / "loc"),
                 "--out", str(tmp_path / "fig.png")]) == 2
    assert "has no object boxes" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "fig.png").exists()


# 13. no noise in logs -----------------------------------------------------------------------------

def test_13_no_progress_bars_when_stderr_is_not_a_terminal(data, tmp_path, capfd):
    args = [a for a in _train(data, tmp_path / "run", "--epochs", "1") if a != "--no-progress"]
    assert main(args) == 0
    err = capfd.readouterr().err
    assert "it/s" not in err and "\r" not in err


# Beyond the list: the same families with other inputs --------------------------------------

def test_extra_sigterm_stops_a_run_like_ctrl_c(data, tmp_path):
    code, err = _signal_a_run(data, tmp_path / "run", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    line = _one_line(err)
    assert line.startswith("cbam train: SIGTERM: interrupted in epoch") and "--resume" in line
    with run_lock(tmp_path / "run"):  # released
        pass


def test_extra_figure_out_a_folder_is_refused_before_rendering(tmp_path, capsys):
    assert main(["gradcam", "--model", "resnet18", "--out", str(tmp_path)]) == 2
    assert f"--out '{tmp_path}' is a folder, expected a file path" in _one_line(capsys.readouterr().err)
    assert not tmp_path.with_suffix(".png").exists()  # matplotlib would have written <out>.png beside it


def test_extra_config_json_with_wrong_types_and_a_damaged_metrics_file(tmp_path, capsys):
    folder = cbam.save_pretrained(cbam.create_model("resnet18", num_classes=3), tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_args": 5}))
    assert main(["eval", "--weights", str(folder), "--data", "embedded"]) == 2
    assert "'model_args' must be a JSON object, got 5" in _one_line(capsys.readouterr().err)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2,\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a JSON record"):
        read_metrics(tmp_path)


def test_extra_export_out_exists_without_force(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_text("old")
    assert main(["export", "--model", "resnet18", "--format", "onnx", "--out", str(out)]) == 2
    assert f"--out '{out}' already exists; pass --force to overwrite it" in _one_line(capsys.readouterr().err)
    assert out.read_text() == "old"


def test_extra_detection_images_use_the_one_decoder(tmp_path):
    import numpy as np
    from PIL import Image

    from cbam.data.detection import DetectionDataset, ImageRecord

    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 4), 20000, dtype=np.uint16)).save(path)
    record = ImageRecord(path, 4, 4, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
    image = DetectionDataset([record], ["a"]).load_image(0)
    assert image.max().item() == pytest.approx(round(20000 * 255 / 65535) / 255)  # scaled, not saturated to 1


def test_extra_detect_set_is_not_overridden_by_unset_flags(capsys):
    assert main(["detect", "train", "--set", "detector=bogus"]) == 2  # was silently replaced by the recipe's
    assert "detector must be one of" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("override, message", [
    ("out=5", "out must be text, got 5"),
    ("skip_corrupt=maybe", "skip_corrupt must be true or false, got 'maybe'"),
])
def test_extra_config_values_of_the_wrong_type(override, message, capsys):
    assert main(["train", "--set", override]) == 2
    assert message in _one_line(capsys.readouterr().err)


def test_extra_set_null_is_refused_not_ignored(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--set", "lr=null"])
    assert "lr=null: a null value would keep the recipe's lr" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["export", "--model", "resnet18", "--format", "onnx", "--out", "x.onnx", "--atol", "-1"],
     "argument --atol: expected a non-negative number, got '-1'"),
    (["gradcam", "--model", "resnet18", "--tolerance", "nan"], "argument --tolerance: expected a non-negative number"),
    (["eval", "--weights", "w", "--batch-size", "0"], "argument --batch-size: expected a positive integer, got '0'"),
])
def test_extra_flag_ranges(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
