"""Convert pytorch-fid's FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``, from
https://github.com/mseitzer/pytorch-fid/releases) to the ``.npz`` genjax reads
(``eval.features = 'inception:<path>.npz'``). Needs PyTorch (not a genjax dependency): run it once,
wherever torch is installed.

    python tools/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception-2015-12-05.npz
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(src: str, dst: str) -> None:
    import torch

    from genjax.eval.inception import weight_shapes

    state = torch.load(src, map_location="cpu", weights_only=True)
    want = weight_shapes()
    missing = sorted(set(want) - set(state))
    if missing:
        raise SystemExit(f"{src}: not the FID Inception state dict (missing {missing[:3]} ...).")
    np.savez(dst, **{k: state[k].numpy() for k in want})
    print(f"wrote {dst}: {len(want)} arrays")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
