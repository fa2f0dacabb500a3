"""Option values are checked when the command line is parsed: one ``error:`` line, exit status 2,
nothing read or written."""
import argparse

import pytest

from sam_sr.cli import argtypes as types
from sam_sr.cli import main


@pytest.mark.parametrize("text,value", [("0.125,0.25,0.5,1", (0.125, 0.25, 0.5, 1.0)), ("1", (1.0,)),
                                        (" 0.5 , 1 ", (0.5, 1.0))])
def test_scales_accepts_fractions(text, value):
    assert types.scales(text) == value


@pytest.mark.parametrize("text", ["-1,0.5", "2,3", "nan", "inf", "0", "0.5,x", ""])
def test_scales_refuses_values_outside_0_1(text):
    with pytest.raises(argparse.ArgumentTypeError):
        types.scales(text)


def test_integer_and_number_types():
    assert types.positive_int("3") == 3 and types.count("0") == 0
    for parse, bad in ((types.positive_int, "0"), (types.count, "-1"), (types.count, "1.5"),
                       (types.count, "abc")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)
    assert types.int_list("2048, 3840,") == [2048, 3840] and types.int_list("") == []
    for bad in ("abc", "2048,x", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            types.int_list(bad)
    margin = types.float_in(0, 0.5, high_open=True)
    assert margin("0") == 0.0
    for bad in ("0.5", "-0.1", "nan", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            margin(bad)


def test_device_names_are_checked():
    assert types.device("cpu") == "cpu"
    for bad in ("bogus", "gpu", "cuda:99"):
        with pytest.raises(argparse.ArgumentTypeError):
            types.device(bad)


def test_decode_and_encoder_tile():
    assert types.decode_mode("contour") == "contour:16"
    assert types.encoder_tile("0") == 0 and types.encoder_tile("1024") == 1024
    for parse, bad in ((types.decode_mode, "spiral"), (types.decode_mode, "strided:0"),
                       (types.encoder_tile, "10"), (types.encoder_tile, "128"), (types.encoder_tile, "-8")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


@pytest.mark.parametrize("argv,option", [
    (["infer", "--scales=-1,0.5"], "--scales"),
    (["infer", "--scales", "2,3"], "--scales"),
    (["infer", "--scales", "nan"], "--scales"),
    (["infer", "--encoder-tile", "10"], "--encoder-tile"),
    (["infer", "--device", "bogus"], "--device"),
    (["infer", "--points-per-side", "0"], "--points-per-side"),
    (["infer", "--margin", "0.7"], "--margin"),
    (["infer", "--mask-threshold", "1"], "--mask-threshold"),
    (["infer", "--num-classes", "0"], "--num-classes"),
    (["infer", "--decode", "spiral"], "--decode"),
    (["infer", "--precision", "fp16"], "--precision"),
    (["eval", "--limit", "-1"], "--limit"),
    (["eval-semantic", "--limit", "-1"], "--limit"),
    (["precompute-sam", "--config", "c.yaml", "--threads", "-1"], "--threads"),
    (["profile", "--runs", "0"], "--runs"),
    (["profile", "--sizes", "abc"], "--sizes"),
    (["profile", "--threads", "-1"], "--threads"),
    (["coco", "--results", "r.json", "--images", ".", "--pad", "-1"], "--pad"),
    (["coco", "--results", "r.json", "--images", ".", "--min-iou", "2"], "--min-iou"),
])
def test_bad_option_values_are_one_error_line_before_anything_runs(single, capsys, argv, option):
    out = single / "out.png"
    extra = ["--image", str(single / "photo.png"), "--mask", str(single / "mask.png"), "--out", str(out)] \
        if argv[0] == "infer" else (["--out", str(out)] if argv[0] == "coco" else [])
    assert main(argv[:1] + extra + argv[1:]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and option in err, err
    assert not out.exists()


def test_a_negative_looking_value_gets_a_hint(single, capsys):
    assert main(["infer", "--example", "--out", str(single / "o.png"), "--scales", "-1,0.5"]) == 2
    assert "--option=VALUE" in capsys.readouterr().err
