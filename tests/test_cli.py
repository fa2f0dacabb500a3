"""The command-line tools end to end, and every bad input the issue lists."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam_sr.cli import infer_main, main
from sam_sr.inference.predictor import DEFAULT_CHECKPOINT
from tests.conftest import ROOT, SHARED_DATA, disk_photo, needs_shared, save_pair

has_default = pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="default model not built")


def _pair(tmp_path, h=96, w=128):
    img, mask = disk_photo(h, w)
    Image.fromarray(img).save(tmp_path / "img.jpg")
    Image.fromarray(mask[::2, ::2]).save(tmp_path / "coarse.png")
    return tmp_path / "img.jpg", tmp_path / "coarse.png"


@pytest.mark.slow
@has_default
def test_example_with_default_model_via_console_script(tmp_path):
    out, ov = tmp_path / "refined.png", tmp_path / "overlay.png"
    r = subprocess.run([sys.executable, str(ROOT / "infer.py"), "--example", "--out", str(out),
                        "--overlay", str(ov), "--soft"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    refined = np.asarray(Image.open(out))
    assert refined.shape == (400, 600) and set(np.unique(refined)) <= {0, 255}
    assert 0.05 < (refined > 0).mean() < 0.8
    assert np.asarray(Image.open(tmp_path / "refined_soft.png")).shape == (400, 600)
    assert np.asarray(Image.open(ov)).shape == (400, 600, 3)


def test_single_image_with_checkpoint(tmp_path, tiny_checkpoint, capsys):
    img, coarse = _pair(tmp_path)
    out = tmp_path / "out.png"
    assert infer_main(["--image", str(img), "--mask", str(coarse), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint)]) == 0
    assert np.asarray(Image.open(out)).shape == (96, 128)
    assert main(["infer", "--image", str(img), "--mask", str(coarse), "--out", str(out),
                 "--checkpoint", str(tiny_checkpoint), "--force"]) == 0


def _err(capsys):
    return capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing_image", "unreadable_mask", "aspect", "corrupt_ckpt",
                                  "foreign_ckpt", "other_variant", "output_exists"])
def test_bad_inputs_give_one_error_and_no_output(tmp_path, tiny_checkpoint, capsys, case):
    img, coarse = _pair(tmp_path)
    out = tmp_path / "out.png"
    ckpt = tiny_checkpoint
    extra = []
    if case == "missing_image":
        img = tmp_path / "nope.jpg"
    elif case == "unreadable_mask":
        coarse.write_bytes(b"garbage")
    elif case == "aspect":
        Image.fromarray(np.zeros((128, 96), np.uint8)).save(coarse)
    elif case == "corrupt_ckpt":
        ckpt = tmp_path / "corrupt.pt"
        ckpt.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    elif case == "foreign_ckpt":
        import torch
        ckpt = tmp_path / "foreign.pt"
        torch.save({"state_dict": {}}, ckpt)
    elif case == "other_variant":
        extra = ["--variant", "v2.1"]
    elif case == "output_exists":
        out.write_bytes(b"precious")
    rc = infer_main(["--image", str(img), "--mask", str(coarse), "--out", str(out),
                     "--checkpoint", str(ckpt), *extra])
    err = _err(capsys)
    assert rc == 2
    assert err.count("error:") == 1 and len(err.strip().splitlines()) == 1, err
    expected = {"missing_image": "not found", "unreadable_mask": "cannot read mask",
                "aspect": "aspect ratio", "corrupt_ckpt": "cannot read checkpoint",
                "foreign_ckpt": "not a sam-sr checkpoint", "other_variant": "not 'v2.1'",
                "output_exists": "output exists"}[case]
    assert expected in err
    if case == "output_exists":
        assert out.read_bytes() == b"precious"
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_folder_mode_skips_bad_pairs_and_reports(tmp_path, tiny_checkpoint, capsys):
    imgs, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    for i in range(3):
        save_pair(imgs, masks, f"ok{i}", i)
    save_pair(imgs, tmp_path / "elsewhere", "nomask", 5)
    save_pair(imgs, masks, "wrongaspect", 6)
    Image.fromarray(np.zeros((40, 10), np.uint8)).save(masks / "wrongaspect.png")
    rc = infer_main(["--images", str(imgs), "--masks", str(masks), "--out", str(out),
                     "--checkpoint", str(tiny_checkpoint)])
    err = _err(capsys)
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["ok0.png", "ok1.png", "ok2.png"]
    assert "nomask.jpg" in err and "wrongaspect.jpg" in err
    # a second run refuses to overwrite, a --force run succeeds
    assert infer_main(["--images", str(imgs), "--masks", str(masks), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint)]) == 1
    (imgs / "nomask.jpg").unlink()
    (imgs / "wrongaspect.jpg").unlink()
    assert infer_main(["--images", str(imgs), "--masks", str(masks), "--out", str(out),
                       "--checkpoint", str(tiny_checkpoint), "--force"]) == 0


def test_usage_errors(tmp_path, capsys):
    assert infer_main(["--out", str(tmp_path / "x.png")]) == 2
    assert "give --image and --mask" in _err(capsys)
    assert infer_main(["--images", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main([]) == 2


def test_eval_cli_on_a_tiny_dataset(tmp_path, tiny_checkpoint, capsys):
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"{i}", i)
        save_pair(tmp_path / "x", tmp_path / "coarse" / "net", f"{i}", i + 7)
    js = tmp_path / "res.json"
    assert main(["eval", "--root", str(tmp_path), "--ids", "", "--sources", "net,scale_gap_x8",
                      "--checkpoint", str(tiny_checkpoint), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "coarse source: net" in out and "coarse source: scale_gap_x8" in out
    import json
    res = json.loads(js.read_text())["results"]
    assert res["net"]["coarse"]["n"] == 2 and "refined" in res["net"]


@pytest.mark.slow
@needs_shared
def test_eval_cli_coarse_rows_on_real_data(capsys):
    rc = main(["eval", "--root", str(SHARED_DATA / "sod"),
                    "--ids", str(ROOT / "configs/splits/sod_eval.txt"), "--coarse-only", "--limit", "5"])
    assert rc == 0
    out = capsys.readouterr().out
    for src in ("picanet", "dss", "amulet", "scale_gap_x8"):
        assert f"coarse source: {src}** (n = 5)" in out


@pytest.mark.parametrize("palette", [True, False])
def test_labels_mode_reads_and_writes_index_and_palette_pngs(tmp_path, tiny_checkpoint, palette):
    img, _ = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "img.png")
    labels = np.zeros((48, 64), np.uint8)
    labels[:, 32:] = 2
    labels[40:, :] = 255
    im = Image.fromarray(labels)
    if palette:
        im.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [9] * (253 * 3))
    im.save(tmp_path / "labels.png")
    out = tmp_path / "refined.png"
    rc = infer_main(["--image", str(tmp_path / "img.png"), "--labels", str(tmp_path / "labels.png"),
                     "--num-classes", "3", "--ignore-index", "255", "--out", str(out),
                     "--checkpoint", str(tiny_checkpoint)])
    assert rc == 0
    res = Image.open(out)
    assert res.mode == ("P" if palette else "L")
    if palette:
        assert res.getpalette()[:9] == [0, 0, 0, 200, 0, 0, 0, 200, 0]
    arr = np.asarray(res)
    assert arr.shape == (48, 64) and (arr[40:] == 255).all() and set(np.unique(arr)) <= {0, 2, 255}


def test_labels_mode_errors(tmp_path, tiny_checkpoint, capsys):
    img, _ = disk_photo(48, 64)
    Image.fromarray(img).save(tmp_path / "img.png")
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / "rgb.png")
    base = ["--image", str(tmp_path / "img.png"), "--out", str(tmp_path / "o.png"),
            "--checkpoint", str(tiny_checkpoint)]
    assert infer_main(base + ["--labels", str(tmp_path / "small.png"), "--num-classes", "2"]) == 2
    assert "differ in size" in capsys.readouterr().err
    assert infer_main(base + ["--labels", str(tmp_path / "rgb.png"), "--num-classes", "2"]) == 2
    assert "index or palette" in capsys.readouterr().err
    assert infer_main(base + ["--labels", str(tmp_path / "small.png")]) == 2
    assert "--num-classes" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_export_model_keeps_weights_and_sets_inference_settings(tmp_path, tiny_checkpoint):
    from sam_sr import Refiner
    dst = tmp_path / "exported.pt"
    cmd = [sys.executable, "-m", "sam_sr", "export", str(tiny_checkpoint), str(dst),
           "--decode", "contour:6", "--min-size", "128"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    exported = Refiner.from_checkpoint(dst, device="cpu")
    assert (exported.cascade.decode, exported.cascade.min_size) == ("contour:6", 128)
    source = Refiner.from_checkpoint(tiny_checkpoint, device="cpu")
    for a, b in zip(exported.model.state_dict().values(), source.model.state_dict().values()):
        assert a.equal(b)
    before = dst.read_bytes()
    again = subprocess.run(cmd[:-4] + ["--decode", "contour:3"], capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr and dst.read_bytes() == before
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "x.pt"), "--decode", "spiral"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown decode mode" in bad.stderr and not (tmp_path / "x.pt").exists()


def test_export_boundary_from_writes_v5_with_the_crms_boundary_step(tmp_path):
    """``sam-sr export V5 DST --boundary-from CRM``: the boundary step's weights from CRM (as
    ``replace_boundary``, tests/test_checkpoint.py), settings flags refused with it, DST never partial."""
    import torch

    from sam_sr.checkpoint import read_checkpoint
    weights = ROOT / "sam_sr/weights"
    dst = tmp_path / "v5_full.pt"
    base = [sys.executable, "-m", "sam_sr", "export", str(weights / "sam_sr_v5.pt"), str(dst),
            "--boundary-from", str(weights / "crm_r18_full.pt")]
    r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out, crm = read_checkpoint(dst), read_checkpoint(weights / "crm_r18_full.pt")
    assert all(torch.equal(out["model"][k], v) for k, v in crm["model"].items())
    bad = subprocess.run(base[:5] + [str(tmp_path / "y.pt")] + base[6:] + ["--decode", "contour:4"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "keep SRC's inference settings" in bad.stderr
    assert not (tmp_path / "y.pt").exists()


def test_export_decision_sets_a_v5_setting_and_refuses_bad_ones(tmp_path):
    """``sam-sr export V5 DST --decision opens=1.01``: the setting lands in the model config, the
    weights stay; an unknown key, a value that is not a number, or a crm SRC is one error and no DST."""
    import torch

    from sam_sr.checkpoint import read_checkpoint
    src = ROOT / "sam_sr/weights/sam_sr_v5.pt"
    dst = tmp_path / "v5_opens.pt"
    r = subprocess.run([sys.executable, "-m", "sam_sr", "export", str(src), str(dst), "--decision", "opens=1.01"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    new, old = read_checkpoint(dst), read_checkpoint(src)
    assert new["model_config"]["decision"]["opens"] == 1.01 and new["decision_set"] == {"opens": 1.01}
    assert all(torch.equal(v, old["model"][k]) for k, v in new["model"].items())
    for extra, message in ((["--decision", "nope=1"], "unknown v5 decision settings"),
                           (["--decision", "opens"], "expected KEY=NUMBER"),
                           (["--decision", "opens=-1"], "opens must be a number >= 0")):
        bad = subprocess.run([sys.executable, "-m", "sam_sr", "export", str(src), str(tmp_path / "z.pt"), *extra],
                             capture_output=True, text=True)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    crm = subprocess.run([sys.executable, "-m", "sam_sr", "export", str(ROOT / "sam_sr/weights/crm_r18.pt"),
                          str(tmp_path / "z.pt"), "--decision", "opens=1"], capture_output=True, text=True)
    assert crm.returncode == 2 and "a v4 or v5 one is needed" in crm.stderr
    assert not (tmp_path / "z.pt").exists()


def test_help_lists_every_command_and_exits_0(capsys):
    from sam_sr.cli import COMMANDS
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("infer", "eval", "eval-semantic", "train", "profile", "precompute-sam", "ablation", "export",
                 "figure", "boundary-alignment"):
        assert name in COMMANDS and name in out
        assert main([name, "--help"]) == 0
    assert main(["nope"]) == 2


@pytest.mark.slow
def test_console_entry_points_help():
    r = subprocess.run([sys.executable, "-m", "sam_sr", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "boundary-alignment" in r.stdout
    r = subprocess.run([sys.executable, str(ROOT / "infer.py"), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("usage: infer.py")


def test_ctrl_c_gives_one_line_status_130_and_no_output(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    from sam_sr import Refiner
    img, coarse = _pair(tmp_path)
    out = tmp_path / "out.png"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Refiner, "predict", interrupted)
    rc = main(["infer", "--image", str(img), "--mask", str(coarse), "--out", str(out), "--checkpoint",
               str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip() == "interrupted"
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_data_defaults_come_from_the_environment_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SAM_SR_DATA", raising=False)
    assert main(["eval", "--coarse-only"]) == 2
    assert "--root" in capsys.readouterr().err
    for i in range(2):
        save_pair(tmp_path / "sod" / "images", tmp_path / "sod" / "masks", f"{i}", i)
    monkeypatch.setenv("SAM_SR_DATA", str(tmp_path))
    assert main(["eval", "--coarse-only", "--ids", "", "--sources", "scale_gap_x4"]) == 0
    assert "(n = 2)" in capsys.readouterr().out


def test_figure_command_draws_and_refuses_to_overwrite(tmp_path, tiny_checkpoint, capsys):
    from sam_sr.cli import main
    for i in range(2):
        save_pair(tmp_path / "images", tmp_path / "masks", f"p{i}", i)
    out = tmp_path / "fig.png"
    args = ["--root", str(tmp_path), "--ids", "p0,p1", "--source", "scale_gap_x4", "--checkpoint",
            str(tiny_checkpoint), "--out", str(out)]
    assert main(["figure"] + args + ["--zoom", "16"]) == 0
    fig = np.asarray(Image.open(out))
    assert fig.ndim == 3 and fig.shape[2] == 3
    before = out.read_bytes()
    assert main(["figure"] + args) == 2 and "output exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["figure"] + args[:3] + ["p0,zz"] + args[4:] + ["--force"]) == 2
    assert "zz" in capsys.readouterr().err
