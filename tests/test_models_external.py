"""torchvision and timm backbones under globalpool heads (``create_model("torchvision:...")``).

Small inputs, random initialisation, no network: the pretrained path is tested with the
libraries' download functions replaced by ones that fail as an offline machine does.
Reference values come from the libraries' own networks, not from globalpool's code.
"""

from __future__ import annotations

import json
import sys
import warnings
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F

from globalpool.models import create_model, external

with warnings.catch_warnings():  # a torchvision built for another torch: models still work
    warnings.simplefilter("ignore")
    try:
        torchvision = external.import_torchvision()
    except ImportError as err:
        pytest.skip(f"torchvision is not installed ({err})", allow_module_level=True)

TIMM = "timm:mobilenetv3_small_050"  # ~0.3M parameters: fast on a CPU
HEADS = ["fc", "classmap", "pool-linear"]


@pytest.fixture(scope="module")
def timm_lib():
    try:
        return external.import_timm()
    except ImportError as err:
        pytest.skip(f"timm is not installed ({err})")


def _resnet18(k=5, **kw):
    torch.manual_seed(0)
    return create_model("torchvision:resnet18", k, input_size=32, **kw)


def _images(n=2, c=3, h=32, w=32, seed=1):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _reference_layer4(model):
    """torchvision's own resnet18, given our backbone's weights, up to layer4."""
    from torchvision.models.feature_extraction import create_feature_extractor

    net = torchvision.models.resnet18()
    missing, unexpected = net.load_state_dict(model.backbone.state_dict(), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
    return create_feature_extractor(net.eval(), {"layer4": "out"})


# -- building ---------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
def test_every_head_on_torchvision_resnet18(head):
    pool = None if head == "fc" else "gem"
    model = _resnet18(head=head, pool=pool).eval()
    assert (model.num_features, model.backbone.num_features) == (512, 512)
    assert (model.head_kind, model.pool_name) == (head, pool)
    with torch.no_grad():
        assert model(_images()).shape == (2, 5)
        assert model.forward_features(_images()).shape == (2, 512, 1, 1)
        if head == "fc":
            with pytest.raises(ValueError, match="FC head built for input size"):
                model(_images(h=64, w=48))
        else:  # a pooling head takes another size
            assert model(_images(h=64, w=48)).shape == (2, 5)
            assert model.forward_features(_images(h=64, w=48)).shape == (2, 512, 2, 2)


@pytest.mark.parametrize("head", HEADS)
def test_every_head_on_a_timm_model(timm_lib, head):
    pool = None if head == "fc" else "avgmax"
    torch.manual_seed(0)
    model = create_model(TIMM, 4, head=head, pool=pool, input_size=32).eval()
    assert model.num_features == model.backbone.num_features == 288
    with torch.no_grad():
        assert model(_images()).shape == (2, 4)
        if head != "fc":
            assert model(_images(h=64, w=48)).shape == (2, 4)


def test_the_default_head_is_pool_linear_with_avg_as_in_timm():
    model = _resnet18()
    assert (model.head_kind, model.pool_name) == ("pool-linear", "avg")


def test_torchvision_features_equal_torchvisions_own_layer4():
    model = _resnet18(head="classmap").eval()
    x = _images(h=64, w=64)
    with torch.no_grad():
        expected = _reference_layer4(model)(x)["out"]
        assert torch.allclose(model.forward_features(x), expected, atol=1e-5)
    # the weights are torchvision's, under torchvision's names
    assert "backbone.layer4.1.conv2.weight" in model.state_dict()
    assert not any(k.startswith(("backbone.fc", "backbone.avgpool")) for k in model.state_dict())


def test_timm_features_equal_timms_forward_features(timm_lib):
    torch.manual_seed(0)
    model = create_model(TIMM, 3, input_size=32).eval()
    # timm's classifier part that forward_features never runs is gone (not saved or counted)
    assert not any("conv_head" in k for k in model.state_dict())
    net = timm_lib.create_model(TIMM.split(":")[1], num_classes=0, global_pool="").eval()
    missing, unexpected = net.load_state_dict(model.backbone.model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("conv_head.") for k in missing)
    x = _images(h=48, w=40)
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), net.forward_features(x), atol=1e-5)


@pytest.mark.parametrize("in_chans", [1, 5])
def test_other_input_channels_adapt_the_first_conv_as_timm_does(in_chans):
    torch.manual_seed(0)
    rgb = torchvision.models.resnet18().conv1.weight.detach()
    model = _resnet18(in_chans=in_chans)  # same seed: the same random RGB filters
    weight = model.backbone.conv1.weight.detach()
    assert weight.shape == (64, in_chans, 7, 7)
    if in_chans == 1:
        expected = rgb.sum(1, keepdim=True)
    else:  # RGB, RGB (cut to 5 channels), scaled by 3/5
        expected = torch.cat([rgb, rgb[:, :2]], 1) * 3 / 5
    assert torch.allclose(weight, expected)
    assert model(_images(c=in_chans)).shape == (2, 5)


@pytest.mark.parametrize(
    "name", ["torchvision:mobilenet_v3_small", "torchvision:densenet121", "torchvision:vgg11"]
)
def test_other_torchvision_families(name):
    model = create_model(name, 3, head="classmap", input_size=32).eval()
    with torch.no_grad():
        assert model(_images()).shape == (2, 3)


def test_densenet_features_end_with_torchvisions_relu():
    model = create_model("torchvision:densenet121", 3, input_size=32).eval()
    net = torchvision.models.densenet121().eval()
    net.load_state_dict(model.backbone.state_dict(), strict=False)
    x = _images()
    with torch.no_grad():
        assert torch.allclose(model.forward_features(x), F.relu(net.features(x)), atol=1e-5)


# -- errors -----------------------------------------------------------------------------
def test_unknown_and_unsupported_names_say_what_to_do(timm_lib):
    with pytest.raises(ValueError, match=r"unknown torchvision model 'resnet19'.*resnet18.*"):
        create_model("torchvision:resnet19", 3)
    with pytest.raises(ValueError, match=r"list_models\(module=torchvision.models\)"):
        create_model("torchvision:nonsense", 3)
    with pytest.raises(ValueError, match=r"not a supported convolutional family.*resnet.*convnext"):
        create_model("torchvision:vit_b_16", 3)
    with pytest.raises(ValueError, match=r"unknown timm model 'resnet10x'.*timm.list_models"):
        create_model("timm:resnet10x", 3)
    with pytest.raises(ValueError, match=r"not feature maps.*convolutional"):
        create_model("timm:vit_tiny_patch16_224", 3, input_size=224)
    with pytest.raises(ValueError, match=r"unknown model.*torchvision:<name>"):
        create_model("resnet18", 3)
    with pytest.raises(TypeError, match="pretrained must be True or False"):
        create_model("torchvision:resnet18", 3, pretrained="yes")


def test_a_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now fails
    with pytest.raises(ImportError, match=r"pip install 'globalpool\[vision\]'"):
        create_model("torchvision:resnet18", 3)


def _offline(monkeypatch, timm_lib=None):
    def no_network(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", no_network)
    if timm_lib is not None:
        for fn in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
            monkeypatch.setattr(f"timm.models._builder.{fn}", no_network)


@pytest.mark.parametrize("name", ["torchvision:resnet18", TIMM])
def test_pretrained_weights_offline_fail_with_one_clear_error(monkeypatch, timm_lib, name):
    _offline(monkeypatch, timm_lib)
    with pytest.raises(external.WeightsUnavailableError) as info:
        create_model(name, 3, pretrained=True, input_size=32)
    message = str(info.value)
    assert "could not be fetched" in message and "pretrained=False" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no urllib chain


def test_pretrained_offline_from_the_cli_is_one_line(monkeypatch, capsys, tmp_path):
    from globalpool.cli.main import main

    _offline(monkeypatch)
    code = main([
        "train", "--model", "torchvision:resnet18", "--model-kwargs", '{"pretrained": true}',
        "--dataset", "shapes", "--dataset-kwargs", '{"n_train": 32, "n_test": 8}',
        "--out", str(tmp_path / "run"), "--quiet", "--no-tensorboard",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "could not be fetched" in err and "Traceback" not in err


# -- saved runs -------------------------------------------------------------------------
def _save_run(model, run_dir, classes=("a", "b", "c")):
    from globalpool.models.io import CHECKPOINT_DIR, save_weights, write_model_json

    save_weights(model, run_dir / CHECKPOINT_DIR / "best.safetensors", {"epoch": 1})
    write_model_json(run_dir, {
        "model": model.model_args["name"], "model_args": model.model_args,
        "classes": list(classes), "mean": [0.5] * model.in_chans, "std": [0.25] * model.in_chans,
        "input_size": list(model.input_size), "in_chans": model.in_chans,
    })  # fmt: skip


def _perturb_batch_norms(model):
    """Non-trivial running statistics, so a round trip that lost them would show."""
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.mark.parametrize("head, pool", [("classmap", "gem"), ("pool-linear", "max")])
def test_save_load_predict_cam_round_trip(tmp_path, head, pool):
    import globalpool
    from globalpool.analysis import cam_method, compute_cam

    model = _resnet18(3, head=head, pool=pool, in_chans=1).eval()
    _perturb_batch_norms(model)
    _save_run(model, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["model_args"]["pretrained"] is False
    loaded = globalpool.load(tmp_path)
    x = _images(c=1, h=40, w=48)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    image = (torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(4)) * 255).byte()
    (top,) = loaded.predict([image], topk=3)
    assert sorted(r["class"] for r in top) == ["a", "b", "c"]

    # CAM (class-map head) or Grad-CAM (the others), checked against a hand computation on
    # torchvision's own layer4 output
    method = cam_method(loaded)
    assert method == ("classmap" if head == "classmap" else "gradcam")
    logits, maps = compute_cam(loaded, x, raw=True)
    assert maps.shape == (2, 2, 2)
    with torch.no_grad():
        feats = _reference_layer4(_with_rgb_conv(loaded))(x.repeat(1, 3, 1, 1) / 3)["out"]
    pred = logits.argmax(1)
    if head == "classmap":
        expected = F.conv2d(feats, loaded.head.conv.weight, loaded.head.conv.bias)
        expected = expected[torch.arange(2), pred]
    else:
        feats = feats.detach().requires_grad_(True)
        chosen = loaded.head(feats).gather(1, pred[:, None]).sum()
        (grad,) = torch.autograd.grad(chosen, feats)
        expected = F.relu((grad.mean((2, 3), keepdim=True) * feats).sum(1)).detach()
    assert torch.allclose(maps, expected, atol=1e-4)


def _with_rgb_conv(model):
    """A copy of ``model`` whose 1-channel conv1 is spread over RGB (each w/3 ... *3 is
    undone by feeding x/3 on all three channels), so torchvision's 3-channel resnet18
    can run the same weights."""
    import copy

    rgb = copy.deepcopy(model)
    conv = rgb.backbone.conv1
    new = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    with torch.no_grad():
        new.weight.copy_(conv.weight.repeat(1, 3, 1, 1))
    rgb.backbone.conv1 = new
    return rgb


def test_onnx_export_has_a_dynamic_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import globalpool
    from globalpool.deploy import export_model

    model = _resnet18(3, head="pool-linear", pool="gem").eval()
    _perturb_batch_norms(model)
    _save_run(model, tmp_path / "run")
    loaded = globalpool.load(tmp_path / "run")
    result = export_model(loaded, tmp_path / "m.onnx", "onnx")
    assert result.dynamic_axes["image"] == {0: "batch", 2: "height", 3: "width"}
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for h, w in [(32, 32), (72, 56)]:
        x = _images(3, h=h, w=w, seed=h)
        (got,) = session.run(None, {name: x.numpy()})
        with torch.no_grad():
            assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-4)


# -- fine-tuning ------------------------------------------------------------------------
def _one_step(model, config, x, y):
    from globalpool.train.loop import train_one_epoch
    from globalpool.train.optim import build_optimizer, freeze_backbone

    if config.freeze_backbone:
        freeze_backbone(model)
    optimizer = build_optimizer(model, config)
    train_one_epoch(
        model, [(x, y)], optimizer, torch.nn.CrossEntropyLoss(), lr_for_step=lambda step: 0.5
    )
    return optimizer


def test_freeze_backbone_trains_the_head_only():
    from globalpool.train import TrainConfig

    model = _resnet18(3, head="classmap", pool="avg")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _images(4), torch.tensor([0, 1, 2, 0])
    _one_step(model, TrainConfig(freeze_backbone=True), x, y)
    after = model.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    # weights and batch-norm statistics of the backbone: untouched (eval mode kept)
    assert all(torch.equal(before[k], after[k]) for k in backbone)
    assert not torch.equal(before["head.conv.weight"], after["head.conv.weight"])
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert not model.backbone.training and model.head.training
    assert not any(m.training for m in model.backbone.modules())


def test_backbone_lr_scale_sets_the_groups_learning_rates(timm_lib):
    from globalpool.train import TrainConfig

    torch.manual_seed(0)
    model = create_model(TIMM, 3, head="pool-linear", pool="gem", input_size=32)
    config = TrainConfig(backbone_lr_scale=0.1, lr=0.2, weight_decay=1e-4)
    optimizer = _one_step(model, config, _images(4), torch.tensor([0, 1, 2, 0]))
    backbone = {id(p) for p in model.backbone.parameters()}
    head = {id(p) for p in model.head.parameters()}
    seen = set()
    for group in optimizer.param_groups:
        ids = {id(p) for p in group["params"]}
        seen |= ids
        if ids <= backbone:
            assert group["lr"] == pytest.approx(0.05)  # 0.5 from the schedule x 0.1
        else:
            assert ids <= head and group["lr"] == pytest.approx(0.5)
    assert seen == backbone | head  # every parameter trains, in exactly one group
    assert len(optimizer.param_groups) == 4
    # without the scale: the two groups as before
    plain = _one_step(model, TrainConfig(), _images(4), torch.tensor([0, 1, 2, 0]))
    assert [g["lr"] for g in plain.param_groups] == [0.5, 0.5]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone_lr_scale": 0.0}, "backbone_lr_scale must be finite and > 0"),
        ({"backbone_lr_scale": float("nan")}, "backbone_lr_scale must be finite"),
        ({"freeze_backbone": True, "backbone_lr_scale": 0.1}, "no effect with freeze_backbone"),
        ({"freeze_backbone": "yes"}, "freeze_backbone must be true or false"),
    ],
)
def test_fine_tuning_settings_are_validated(changes, message):
    from globalpool.train import TrainConfig

    with pytest.raises((ValueError, TypeError), match=message):
        TrainConfig(**changes).validate()


# -- the command line -------------------------------------------------------------------
@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cli_train_then_load_end_to_end(tmp_path, capsys, keep_threads):
    import globalpool
    from globalpool.cli.main import main

    run = tmp_path / "run"
    code = main([
        "train", "--model", "torchvision:resnet18", "--head", "classmap", "--pool", "gem",
        "--dataset", "shapes", "--dataset-kwargs", '{"n_train": 64, "n_test": 32}',
        "--epochs", "1", "--batch-size", "16", "--threads", "1", "--backbone-lr-scale", "0.1",
        "--out", str(run), "--quiet", "--no-tensorboard",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert (config["backbone_lr_scale"], config["freeze_backbone"]) == (0.1, False)
    meta = json.loads((run / "model.json").read_text())
    assert meta["model_args"]["name"] == "torchvision:resnet18"
    assert meta["model_args"]["pretrained"] is False
    summary = json.loads((run / "summary.json").read_text())
    assert 0.0 <= summary["test_acc"] <= 1.0
    model = globalpool.load(run)
    assert (model.head_kind, model.pool_name, model.num_classes) == ("classmap", "gem", 3)
    state = json.loads((run / "checkpoints" / "last.state.json").read_text())
    assert sorted(g["lr_scale"] for g in state["optim_param_groups"]) == [0.1, 0.1, 1.0, 1.0]
    # the setting makes another run: a resume may not change it
    assert main(["train", "--resume", str(run), "--epochs", "2", "--backbone-lr-scale", "1"]) == 2
    assert "cannot resume with a different backbone_lr_scale" in capsys.readouterr().err


def test_cli_freeze_backbone_on_a_native_model(tmp_path, capsys):
    from globalpool.cli.main import main
    from globalpool.models.io import read_safetensors

    run = tmp_path / "run"
    args = [
        "train", "--model", "smallgap", "--dataset", "digits", "--dataset-kwargs",
        '{"size": 8}', "--epochs", "2", "--batch-size", "128", "--out", str(run), "--quiet",
        "--no-tensorboard", "--freeze-backbone", "--stop-after-epoch", "1",
    ]  # fmt: skip
    assert main(args) == 0
    first, _ = read_safetensors(run / "checkpoints" / "last.safetensors")
    assert main(["train", "--resume", str(run)]) == 0  # the frozen run resumes
    last, _ = read_safetensors(run / "checkpoints" / "last.safetensors")
    backbone = [k for k in first if k.startswith("backbone.")]
    assert backbone and all(torch.equal(first[k], last[k]) for k in backbone)
    assert any(not torch.equal(first[k], last[k]) for k in first if k.startswith("head."))
    assert json.loads((run / "config.json").read_text())["freeze_backbone"] is True
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-freeze-backbone"]) == 2
    assert "cannot resume with a different freeze_backbone" in capsys.readouterr().err
