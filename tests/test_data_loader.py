import pytest
import torch
import torch.nn.functional as F

from globalpool.data import Augment, ImageSet, Loader, normalize

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def make_set(n=37, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    # Label = index: batches reveal exactly which images they hold.
    return ImageSet(images, torch.arange(n), [str(i) for i in range(n)])


def reference_normalize(x_uint8):
    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x_uint8.double() / 255 - m) / s


def collect(loader):
    xs, ys = zip(*list(loader), strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_plain_batches_shapes_partial_batch_and_values():
    s = make_set()
    loader = Loader(s, 10, shuffle=False, mean=MEAN, std=STD)
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    assert [len(y) for _, y in batches] == [10, 10, 10, 7]
    x, y = collect(loader)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, torch.arange(37))
    torch.testing.assert_close(x.double(), reference_normalize(s.images), atol=1e-5, rtol=0)
    dropped = Loader(s, 10, shuffle=False, drop_last=True, mean=MEAN, std=STD)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [10, 10, 10]


def test_shuffle_covers_every_image_once_and_is_seeded_per_epoch():
    s = make_set()
    loader = Loader(s, 8, shuffle=True, seed=3)
    loader.set_epoch(0)
    _, y0 = collect(loader)
    assert sorted(y0.tolist()) == list(range(37)) and not torch.equal(y0, torch.arange(37))
    loader.set_epoch(1)
    _, y1 = collect(loader)
    assert not torch.equal(y0, y1)
    # A fresh loader set to epoch 1 (a resumed run) replays it exactly.
    resumed = Loader(s, 8, shuffle=True, seed=3)
    resumed.set_epoch(1)
    assert torch.equal(collect(resumed)[1], y1)


def test_augmented_batches_keep_shape_dtype_and_are_reproducible():
    s = make_set()
    aug = Augment(crop_padding=2, flip=True, cutout=3)
    a = Loader(s, 16, shuffle=True, augment=aug, mean=MEAN, std=STD, seed=1)
    b = Loader(s, 16, shuffle=True, augment=aug, mean=MEAN, std=STD, seed=1)
    xa, ya = collect(a)
    xb, yb = collect(b)
    assert xa.shape == (37, 3, 8, 8) and xa.dtype == torch.float32
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_crops_come_from_the_reflect_padded_image():
    s = make_set()
    p = 3
    loader = Loader(s, 37, shuffle=False, augment=Augment(crop_padding=p, flip=False), seed=5)
    x, _ = collect(loader)
    _, params = loader.epoch_plan()
    padded = F.pad(s.images.double(), (p, p, p, p), mode="reflect")  # independent reference
    offsets = params["offsets"]
    assert offsets.min() >= 0 and offsets.max() <= 2 * p and len(set(offsets[:, 0].tolist())) > 3
    for i in range(37):
        dy, dx = offsets[i].tolist()
        expected = padded[i, :, dy : dy + 8, dx : dx + 8] / 255
        torch.testing.assert_close(x[i].double(), expected, atol=1e-6, rtol=0)


def test_flips_are_exact_mirror_images():
    s = make_set()
    loader = Loader(s, 16, shuffle=False, augment=Augment(crop_padding=0, flip=True), seed=2)
    x, _ = collect(loader)
    _, params = loader.epoch_plan()
    flipped = params["flip"]
    assert 0 < flipped.sum() < 37
    plain = s.images.float() / 255
    torch.testing.assert_close(x[flipped], plain[flipped].flip(-1))
    torch.testing.assert_close(x[~flipped], plain[~flipped])


def test_crop_then_flip_combined():
    s = make_set()
    p = 2
    loader = Loader(s, 37, augment=Augment(crop_padding=p, flip=True), seed=9)
    x, _ = collect(loader)
    _, params = loader.epoch_plan()
    padded = F.pad(s.images.float(), (p, p, p, p), mode="reflect") / 255
    for i in range(37):
        dy, dx = params["offsets"][i].tolist()
        crop = padded[i, :, dy : dy + 8, dx : dx + 8]
        torch.testing.assert_close(x[i], crop.flip(-1) if params["flip"][i] else crop)


def test_cutout_zeroes_a_square_after_normalisation():
    s = make_set(size=12)
    size = 4
    loader = Loader(s, 37, augment=Augment(0, False, cutout=size), mean=MEAN, std=STD)
    x, _ = collect(loader)
    _, params = loader.epoch_plan()
    ref = reference_normalize(s.images)
    for i in range(37):
        cy, cx = params["centres"][i].tolist()
        y0, x0 = cy - size // 2, cx - size // 2
        keep = torch.ones(12, 12, dtype=torch.bool)
        keep[max(y0, 0) : y0 + size, max(x0, 0) : x0 + size] = False
        assert (x[i][:, ~keep] == 0).all()
        torch.testing.assert_close(x[i][:, keep].double(), ref[i][:, keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_each_global_batch(drop_last):
    s = make_set(n=37)
    world, per_rank = 3, 4
    kw = dict(shuffle=True, augment=Augment(crop_padding=1), seed=4, drop_last=drop_last)
    single = Loader(s, per_rank * world, **kw)
    ranks = [Loader(s, per_rank, rank=r, world_size=world, **kw) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1
    for batches in zip(single, *ranks, strict=True):
        (xs, ys), shards = batches[0], batches[1:]
        for r, (xr, yr) in enumerate(shards):
            # rows r::world of the global batch (padded by wrapping around at the end)
            n = len(yr)
            assert torch.equal(yr, ys[r::world][:n]) or len(ys) < world * n
            if len(ys) == world * n:
                torch.testing.assert_close(xr, xs[r::world])
    seen = torch.cat([collect(r)[1] for r in ranks])
    if drop_last:
        assert len(seen) == 36 and len(set(seen.tolist())) == 36
    else:
        assert len(seen) == 39 and set(seen.tolist()) == set(range(37))  # 2 repeated


def test_channels_last_and_device():
    s = make_set()
    x, _ = next(iter(Loader(s, 8, channels_last=True, augment=Augment())))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(Loader(s, 8, channels_last=False, augment=Augment())))
    assert x.is_contiguous()


def test_normalize_function_and_bad_arguments():
    s = make_set()
    torch.testing.assert_close(
        normalize(s.images, MEAN, STD).double(), reference_normalize(s.images), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match=r"3 values"):
        normalize(s.images, (0.5, 0.5), (0.2, 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\] units"):
        Loader(s, 4, mean=(125, 122, 113), std=(60, 60, 60))
    with pytest.raises(TypeError, match=r"uint8"):
        normalize(s.images.float(), MEAN, STD)
    with pytest.raises(ValueError, match=r"batch_size"):
        Loader(s, 0)
    with pytest.raises(ValueError, match=r"rank"):
        Loader(s, 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"crop padding"):
        next(iter(Loader(s, 4, augment=Augment(crop_padding=8))))


def test_alternate_flip_mirrors_each_image_in_every_other_epoch():
    s = make_set()
    aug = Augment(crop_padding=0, flip=True, alternate_flip=True)
    loader = Loader(s, 8, shuffle=True, augment=aug, seed=3)
    plain = s.images.float() / 255
    per_epoch = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        x, y = collect(loader)
        flipped = torch.zeros(37, dtype=torch.bool)
        for img, label in zip(x, y, strict=True):
            if torch.allclose(img, plain[label].flip(-1)):
                flipped[label] = True
            else:
                torch.testing.assert_close(img, plain[label])
        per_epoch.append(flipped)
    assert 0 < per_epoch[0].sum() < 37  # a random half, not all or none
    assert torch.equal(per_epoch[1], ~per_epoch[0]) and torch.equal(per_epoch[2], per_epoch[0])
    assert torch.equal(per_epoch[3], per_epoch[1])
    # Random flips, by contrast, are drawn afresh each epoch.
    random = Loader(s, 8, shuffle=True, augment=Augment(crop_padding=0), seed=3)
    draws = []
    for epoch in (0, 2):
        random.set_epoch(epoch)
        draws.append(random.epoch_plan()[1]["flip"])
    assert not torch.equal(draws[0], draws[1])
    with pytest.raises(ValueError, match="alternate_flip needs flip=True"):
        Augment(flip=False, alternate_flip=True)
