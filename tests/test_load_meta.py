"""Tampered or odd model.json metadata is refused with a message, before allocating."""

from __future__ import annotations

import json

import pytest
import torch

import globalpool
from globalpool.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("meta") / "run"
    train(TrainConfig(model="smallgap", dataset="digits", dataset_kwargs={"size": 8},
                      epochs=1, batch_size=128, out_dir=str(out), quiet=True,
                      tensorboard=False))  # fmt: skip
    return out


def tamper(run, tmp_path, **changes):
    meta = json.loads((run / "model.json").read_text())
    for key, value in changes.items():
        if key == "num_classes":
            meta["model_args"]["num_classes"] = value
        elif value is None:
            meta.pop(key)
        else:
            meta[key] = value
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / "checkpoints").symlink_to(run / "checkpoints")
    return bad


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mean": None}, "'mean' must list 1 finite numbers"),
        ({"std": [0.0]}, "'std' must be > 0"),
        ({"mean": [0.1, 0.2, 0.3]}, "'mean' must list 1 finite numbers"),
        ({"std": ["x"]}, "'std' must list"),
        ({"num_classes": 2_000_000}, "no weight of the checkpoint has 2000000 rows"),
        ({"num_classes": -3}, "num_classes must be a positive int"),
    ],
)
def test_tampered_metadata_is_refused(run, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        globalpool.load(tamper(run, tmp_path, **changes))


def test_untampered_run_loads(run):
    assert globalpool.load(run).mean is not None


def test_load_gives_a_typed_model_with_its_runs_metadata(run):
    """No attributes attached to an instance: classes, mean, std are the Classifier's own
    (from model.json), predict is a method of TrainedModel."""
    from globalpool.deploy import TrainedModel
    from globalpool.models import Classifier
    from globalpool.models.io import load_run

    meta = json.loads((run / "model.json").read_text())
    model = globalpool.load(run)
    assert isinstance(model, TrainedModel) and isinstance(model, Classifier)
    assert "predict" not in vars(model) and "predict_proba" not in vars(model)
    assert model.classes == [str(c) for c in meta["classes"]]
    assert model.mean == pytest.approx(meta["mean"]) and model.std == pytest.approx(meta["std"])
    assert model.run_meta["run_dir"] == str(run)
    image = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8) * 4
    top = model.predict(image, topk=2)[0]
    assert top[0]["class"] in model.classes and top[0]["prob"] >= top[1]["prob"]
    plain, _ = load_run(run)
    assert type(plain) is Classifier and plain.classes == model.classes
    assert plain.mean == model.mean


def test_a_new_model_names_its_outputs_and_reset_renames_them():
    from globalpool.models import create_model

    model = create_model("smallgap", num_classes=3)
    assert model.classes == ["0", "1", "2"] and model.mean is None and model.std is None
    model.classes = ["a", "b", "c"]
    model.reset_classifier(4)
    assert model.classes == ["0", "1", "2", "3"]
