"""Make ``tests/fixtures/inception_reference.npz``: pytorch-fid's own network (its FIDInception
blocks on torchvision's Inception-v3, built as ``fid_inception_v3()`` builds it) loaded with
``genjax.eval.inception.synthetic_weights(SEED)`` — the published key layout, strictly — and run
on a few images through pytorch-fid's ``InceptionV3`` wrapper (resize to 299, scale to [-1, 1]);
the pool3 features and the logits of its ``fc`` layer are stored with the images. The test
(``tests/eval/test_inception.py``) runs genjax's port on the same weights and images.

Needs torch, torchvision and pytorch-fid (not genjax dependencies); run once:

    pip install torch torchvision pytorch-fid     # in a separate environment
    python tools/make_inception_fixture.py        # versions used are recorded in the fixture
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEED = 2015


def images() -> dict[str, np.ndarray]:
    """8-bit images (uint8) as a user's samples would come: grey 8x8 (the digits' size), grey 28x28,
    RGB 32x32 of random pixels, and one RGB 299x299 (no resize) of random 23x23 blocks (small to store)."""
    rng = np.random.default_rng(SEED)
    out = {f"x{h}_{c}": rng.integers(0, 256, (2, h, h, c)).astype(np.uint8) for h, c in ((8, 1), (28, 1), (32, 3))}
    out["x299_3"] = np.kron(rng.integers(0, 256, (1, 13, 13, 3)), np.ones((1, 23, 23, 1))).astype(np.uint8)
    return out


def main() -> None:
    import importlib.util

    import pytorch_fid
    import torch
    import torchvision
    from pytorch_fid import inception as pf

    # genjax.eval.inception alone (numpy and jax): the rest of genjax need not be installed here
    spec = importlib.util.spec_from_file_location("inception", ROOT / "genjax" / "eval" / "inception.py")
    inc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inc)
    synthetic_weights = inc.synthetic_weights
    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)  # fid_inception_v3 without the download
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    w = synthetic_weights(SEED)
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in w.items()}, strict=True)
    orig = pf.fid_inception_v3
    pf.fid_inception_v3 = lambda: net  # the wrapper builds its blocks from this network
    try:
        model = pf.InceptionV3([3]).eval()
    finally:
        pf.fid_inception_v3 = orig
    out = {"seed": np.int64(SEED), "versions": np.array(f"torch {torch.__version__}, torchvision "
                                                        f"{torchvision.__version__}, pytorch-fid "
                                                        f"{pytorch_fid.__version__}")}  # fmt: skip
    torch.set_grad_enabled(False)
    for name, x8 in images().items():
        x = x8.astype(np.float32) / 255.0  # as pytorch-fid reads a PNG (ToTensor)
        t = torch.from_numpy(np.repeat(x, 3, -1) if x.shape[-1] == 1 else x).permute(0, 3, 1, 2)
        pool = model(t)[0][:, :, 0, 0]
        out[name] = x8
        out[name + "_pool3"] = pool.numpy()
        out[name + "_logits"] = (pool @ net.fc.weight.T + net.fc.bias).numpy()
    path = ROOT / "tests" / "fixtures" / "inception_reference.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {sorted(out)}")


if __name__ == "__main__":
    main()
