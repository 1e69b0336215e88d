"""A GPT-style character model on the default corpus (the Python standard library's own source,
read from the running interpreter: nothing to download).

    genjax train --config experiments/gpt_text/config.py            # 4 blocks, d 128, 64-character context
    genjax train --config experiments/gpt_text/config.py:bigram     # the bigram table: the baseline
    genjax train --config experiments/gpt_text/config.py:smoke      # seconds, for tests
    genjax train --config experiments/gpt_text/config.py --config.data.name=text:/path/book.txt

Validation / test: the last 10% / 20% of the text as contiguous blocks (see genjax.data.text);
``genjax eval`` reports bits per character and perplexity, ``samples.txt`` holds generated text.
"""

from genjax.config import base_config

# the arguments this config is run with ("" = none): the tests validate each one
EXAMPLES = ("", "bigram", "smoke")

def get_config(arg: str | None = None):
    c = base_config()
    c.name = "gpt_text"
    c.data.name = "text:"  # the default corpus
    c.data.text_chars = 1_000_000
    c.data.block_size = 64
    c.data.tokens = "char"
    c.model.family = "autoregressive"
    m = c.model.autoregressive
    m.arch = "transformer"
    m.d_model, m.n_layers, m.n_heads, m.mlp_ratio = 128, 4, 4, 4
    m.dropout = 0.0
    m.tie = True
    m.temperature, m.top_k = 0.8, 0
    c.optim.name = "adamw"
    c.optim.lr = 3e-3
    c.optim.weight_decay = 0.01
    c.optim.clip_norm = 1.0
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 100
    c.optim.final_lr_ratio = 0.1
    c.train.batch_size = 64
    c.train.epochs = 4  # an epoch = one window per 2 x 64 characters of the training block
    c.train.val_batch_size = 256
    c.train.checkpoint_every = 1
    c.train.tb_images_every = 0
    c.eval.n_samples = 8
    variant = arg or "gpt"
    if variant == "bigram":
        c.name = "bigram_text"
        m.arch = "bigram"
        c.optim.lr = 3e-2
        c.optim.clip_norm = 0.0
    elif variant == "smoke":
        c.name = "gpt_text_smoke"
        c.data.text_chars = 40_000
        c.data.block_size = 16
        m.d_model, m.n_layers, m.n_heads = 32, 1, 2
        c.optim.warmup_steps = 10
        c.train.epochs = 2
        c.train.batch_size = 32
        c.eval.n_samples = 2
    elif variant != "gpt":
        raise ValueError(f"unknown config variant {variant!r}; use gpt, bigram or smoke.")
    return c
