"""Captions at train time, the hold-out split, buckets and the torch Dataset."""

import random

import pytest
import torch
from PIL import Image

from studio.config import IngestSettings
from studio.data import buckets as bk
from studio.data import manifest as mf
from studio.data.captions import TransformersCaptioner, initial_caption, training_caption
from studio.data.dataset import AugmentSettings, BucketBatchSampler, ImageDataset
from studio.data.ingest import ingest
from studio.data.split import assign_splits, holdout_count
from studio.errors import StudioError
from studio.paths import Workspace


def test_initial_caption_rules():
    assert initial_caption("red mug", "a photo in {trigger} style", "neon", False) == ("red mug", "sidecar")
    assert initial_caption("red mug", "x", "neon", True) == ("neon, red mug", "sidecar")
    assert initial_caption(None, "a photo in {trigger} style", "neon", True) == ("a photo in neon style", "template")
    with pytest.raises(StudioError, match="template"):
        initial_caption(None, "a {nope} style", "neon", False)


def test_caption_dropout_and_tag_shuffle_keep_first_tags():
    rng = random.Random(0)
    caps = [training_caption("neon, mug, red, glow, dark", rng, dropout=0.25) for _ in range(2000)]
    assert 0.2 < caps.count("") / len(caps) < 0.3
    shuffled = {training_caption("neon, mug, red, glow, dark", rng, shuffle_tags=True, keep_tokens=1)
                for _ in range(50)}
    assert len(shuffled) > 5 and all(c.startswith("neon, ") for c in shuffled)
    assert all(sorted(c.split(", ")) == sorted("neon, mug, red, glow, dark".split(", ")) for c in shuffled)


def test_holdout_split_is_deterministic_and_sized():
    assert [holdout_count(n, 0.1) for n in (1, 4, 5, 10, 16, 50)] == [0, 0, 1, 1, 2, 5]
    hashes = [f"{i:064x}" for i in range(20)]
    a, b = assign_splits(hashes, 0.1, seed=1), assign_splits(list(reversed(hashes)), 0.1, seed=1)
    assert a.count("val") == 2 and a == list(reversed(b))  # by content, not file order


def test_buckets_fit_the_model():
    buckets = bk.make_buckets(512, 64)
    assert bk.Bucket(512, 512) in buckets
    for b in buckets:
        assert b.width % 64 == 0 and b.height % 64 == 0 and b.width * b.height <= 512 * 512
        assert max(b.aspect, 1 / b.aspect) <= 2.0
    assert bk.assign(4000, 3000, buckets, 64) == bk.Bucket(576, 448)  # landscape stays landscape
    assert bk.assign(300, 300, buckets, 64) == bk.Bucket(256, 256)  # no upscaling beyond the image
    assert bk.assign(300, 300, buckets, 64, no_upscale=False) == bk.Bucket(512, 512)


def _dataset(tmp_path, sizes):
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate(sizes):
        Image.new("RGB", size, (i * 40 % 255, 100, 200)).save(src / f"{i}.png")
    ws = Workspace(tmp_path / "o")
    ingest("d", [src], IngestSettings(val_fraction=0), ws=ws)
    return mf.dataset_dir("d", ws), mf.load("d", ws)


def test_dataset_batches_never_mix_buckets(tmp_path):
    root, m = _dataset(tmp_path, [(64, 64), (64, 64), (96, 48), (96, 48), (96, 48), (48, 96)])
    ds = ImageDataset(root, m.items, AugmentSettings(resolution=64, step=16, repeats=2))
    assert len(ds) == 12
    sampler = BucketBatchSampler(ds, batch_size=4, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler)
    seen = 0
    for batch in loader:
        assert batch["pixels"].shape[2] % 16 == 0 and batch["pixels"].shape[3] % 16 == 0
        assert batch["pixels"].min() >= -1 and batch["pixels"].max() <= 1
        seen += len(batch["caption"])
    assert seen == 12
    shapes = {tuple(ds[i]["pixels"].shape) for i in range(len(ds))}
    assert shapes == {(3, 64, 64), (3, 48, 80), (3, 80, 48)}


def test_flip_and_random_crop_are_seeded(tmp_path):
    root, m = _dataset(tmp_path, [(128, 64)])
    aug = AugmentSettings(resolution=64, step=16, random_crop=True, flip=True, no_upscale=False)
    a = ImageDataset(root, m.items, aug, seed=3)[0]["pixels"]
    b = ImageDataset(root, m.items, aug, seed=3)[0]["pixels"]
    assert torch.equal(a, b)


def test_captioner_without_a_local_model_says_none_ships(tmp_path):
    with pytest.raises(StudioError, match="No captioner ships"):
        TransformersCaptioner(tmp_path)


def test_data_parallel_processes_take_disjoint_batches(tmp_path):
    from studio.train.batches import LatentBatches

    root, m = _dataset(tmp_path, [(64, 64)] * 6 + [(96, 48)] * 4)
    ds = ImageDataset(root, m.items, AugmentSettings(resolution=64, step=16))
    one = LatentBatches(ds, None, 2, seed=0, cache=False)
    ranks = [LatentBatches(ds, None, 2, seed=0, cache=False, rank=r, world=2) for r in (0, 1)]
    global_seq = [one.indices(n) for n in range(8)]
    assert [ranks[0].indices(n) for n in range(4)] == global_seq[0::2]
    assert [ranks[1].indices(n) for n in range(4)] == global_seq[1::2]
