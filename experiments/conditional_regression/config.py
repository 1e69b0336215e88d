"""p(y | x) on 1-D data with input-dependent noise (``toy1d:hetero``): an MLP predicting the
mean and log-variance (heteroscedastic Gaussian NLL).

genjax train --config experiments/conditional_regression/config.py              # heteroscedastic
genjax train --config experiments/conditional_regression/config.py:mse          # one fixed variance (the MSE model)
genjax train --config experiments/conditional_regression/config.py:student_t
genjax train --config experiments/conditional_regression/config.py:digits       # digit classes, cross-entropy
genjax train --config experiments/conditional_regression/config.py:smoke        # seconds, for tests
genjax cv experiments/conditional_regression/config.py                          # 5 folds at once

``python experiments/conditional_regression/main.py`` runs the whole study (the figures, the
calibration table, and focal loss vs cross-entropy on class-imbalanced digits).
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "mse", "student_t", "digits", "focal", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "conditional_regression"
    c.data.name = "toy1d:hetero"
    c.data.toy_n = 2000
    c.data.val_fraction = 0.2
    c.model.family = "predictor"
    c.model.predictor.hidden = (64, 64)
    c.model.predictor.activation = "tanh"
    c.model.predictor.likelihood = "heteroscedastic"
    c.model.predictor.min_var = 1e-4
    c.optim.lr = 3e-3
    c.train.epochs = 300
    c.train.batch_size = 64
    c.train.patience = 40
    c.train.checkpoint_every = 50
    c.eval.sample_metrics = False
    variant, _, rest = (arg or "").partition(",")
    if variant == "mse":
        c.name = "conditional_regression_mse"
        c.model.predictor.likelihood = "gaussian"
    elif variant == "student_t":
        c.name = "conditional_regression_t"
        c.model.predictor.likelihood = "student_t"
    elif variant in ("digits", "focal"):
        c.name = f"conditional_{variant}"
        c.data.name = "digits"
        c.model.predictor.arch = "mlp"
        c.model.predictor.hidden = (128,)
        c.model.predictor.activation = "relu"
        c.model.predictor.likelihood = "categorical" if variant == "digits" else "focal"
        c.optim.lr = 1e-3
        c.train.epochs = 100
        c.train.patience = 15
    elif variant not in ("", "smoke"):
        raise ValueError(f"unknown config variant {arg!r}; use mse, student_t, digits, focal, smoke or nothing.")
    if "smoke" in (variant, rest):
        c.name += "_smoke"
        c.data.toy_n = 500
        c.model.predictor.hidden = (16,)
        c.train.epochs = 3
        c.train.patience = 0
        c.train.checkpoint_every = 1
    return c
