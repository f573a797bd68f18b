"""`globalpool models`: the table and the JSON lines, from the real command."""

import json

from globalpool.cli.main import main
from globalpool.models import list_models


def test_table_lists_every_model(capsys):
    assert main(["models", "--size", "32"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["model", "head", "pool", "input"]
    row = {line.split()[0]: line.split() for line in lines[2:] if ":" not in line}
    # every model: in the table, or (alexnet, at least 63x63) named as not shown
    assert set(row) | {"alexnet"} == set(list_models()) and "alexnet" not in row
    assert "not shown at this size: alexnet" in out
    assert row["nin"][1:5] == ["classmap", "avg", "3x32x32", "966,986"]
    assert row["allcnn_c"][4] == "1,369,738"
    assert row["lenet5"][1:3] == ["fc", "-"]
    assert row["smallgap"][3] == "1x32x32"


def test_json_with_head_and_pool(capsys):
    assert main(["models", "lenet5", "nin", "--head", "pool-linear", "--pool", "gem",
                 "--size", "64x40", "--num-classes", "5", "--json"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["lenet5", "nin"]
    lenet = rows[0]
    assert (lenet["head"], lenet["pool"], lenet["input_size"]) == ("pool-linear", "gem", [64, 40])
    assert lenet["params_head"] == 16 * 5 + 5 + 1  # Linear(16, 5) + GeM's learned p
    assert lenet["params_total"] == lenet["params_backbone"] + lenet["params_head"]
    assert lenet["flops"] == 2 * (6 * 60 * 36 * 75 + 16 * 26 * 14 * 150 + 16 * 5)


def test_too_small_and_user_errors(capsys):
    assert main(["models", "lenet5", "--size", "12"]) == 0
    out = capsys.readouterr().out
    assert "minimum input size is (16, 16)" in out
    assert main(["models", "--pool", "median"]) == 2
    assert "unknown pool 'median'" in capsys.readouterr().err
    assert main(["models", "resnet"]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err
