"""2-D flows on FFJORD's toy data. ``arg`` = "<flow>,<data>", e.g.

    genjax train --config experiments/flow_toy2d/config.py:spline,8gaussians
    python experiments/flow_toy2d/main.py        # all of realnvp|spline|maf x 8gaussians|checkerboard|moons

True entropies with FFJORD's scales: 8gaussians ~2.8315 nats, checkerboard ln 32 = 3.4657 nats;
moons has no closed form.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "realnvp,moons", "maf,checkerboard", "spline,8gaussians")

def get_config(arg: str | None = None):
    flow, _, data = (arg or "spline,8gaussians").partition(",")
    smoke = data.endswith(":smoke") or flow == "smoke"
    if flow == "smoke":
        flow, data = "realnvp", "8gaussians"
    data = data.removesuffix(":smoke") or "8gaussians"
    c = base_config()
    c.name = f"flow_{flow}_{data}"
    c.data.name = f"toy2d:{data}"
    c.data.toy_n = 20000  # 14,400 train, 1,600 validation; 4,000 test from another seed
    c.model.family = "flow"
    c.model.flow.kind = flow
    c.model.flow.hidden = (64, 64)
    c.model.flow.n_layers = 8
    c.model.flow.bins = 8
    c.model.flow.bound = 5.0
    c.optim.lr = 1e-3
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 200
    c.optim.clip_norm = 10.0
    c.train.epochs = 150
    c.train.batch_size = 256
    c.train.checkpoint_every = 50
    c.eval.n_samples = 2000
    if smoke:
        c.data.toy_n = 2000
        c.model.flow.n_layers = 2
        c.train.epochs = 2
        c.optim.warmup_steps = 2
    return c
