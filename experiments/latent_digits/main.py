"""Two-stage (latent) models against one-stage models on the binarized digits of
``family_comparison``: the same static binarization and the same train / validation / test split.

    python experiments/latent_digits/main.py               # ~25 min on 2 CPU cores
    python experiments/latent_digits/main.py --smoke       # seconds: the plumbing, for the tests

Two-stage models (the first stage trained, then a second model on its codes through
``data.name = 'latents:<run folder>'``):

* VQ-VAE (a 4x4 grid of 32 codes, EMA codebook, dead-code restarts) + a transformer prior;
* FSQ (a 4x4 grid, levels 4 x 4 = 16 codes) + a gated PixelCNN prior;
* VAE (8 latents) + latent diffusion (a DDPM on one posterior draw z ~ q(z|x) per example, divided
  by the draws' std; trained on the posterior means instead, its two-stage bound was 15,491 nats:
  the means of the VAE's inactive latents are all near 0, so a prior fitted to them gives the
  draws of q, spread over N(0, 1) there, almost no density).

One-stage models: the VAE, MADE and the gated PixelCNN. For every model: the test NLL in nats per
image (for the two-stage models the bound ``genjax eval`` reports, or none, with what it is), the
sample metrics of 359 samples with the digits' domain classifier (FID / KID / precision / recall;
the real-vs-real floor beside them), parameters and training seconds of every stage. Writes
``--out/report.md``, ``results.json`` (after each model) and ``samples.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import genjax  # noqa: E402
from genjax.config import base_config  # noqa: E402
from genjax.eval.plots import sample_panels  # noqa: E402
from genjax.nn.summary import param_count  # noqa: E402

AR = {"model.family": "autoregressive"}
TRANSFORMER = AR | {"model.autoregressive.arch": "transformer", "model.autoregressive.d_model": 64,
                    "model.autoregressive.n_layers": 2, "model.autoregressive.n_heads": 4}  # fmt: skip
GATED = AR | {"model.autoregressive.arch": "pixelcnn", "model.autoregressive.gated": True,
              "model.autoregressive.channels": 32, "model.autoregressive.n_layers": 4, "train.unroll": 0}  # fmt: skip
VAE = {"model.family": "vae", "model.vae.arch": "mlp", "model.vae.hidden": (256, 128), "model.vae.latent_dim": 8,
       "model.vae.nll_samples": 1000, "model.vae.nll_chunk": 100, "model.vae.val_samples": 10}  # fmt: skip
VQ = {"model.family": "vqvae", "model.vqvae.arch": "conv", "model.vqvae.channels": (64,), "model.vqvae.likelihood":
      "bernoulli", "model.vqvae.codebook_size": 32, "model.vqvae.code_dim": 16}  # fmt: skip
FSQ = VQ | {"model.vqvae.quantizer": "fsq", "model.vqvae.fsq_levels": (4, 4)}
LATENT_DDPM = {"model.family": "diffusion", "model.diffusion.arch": "mlp", "model.diffusion.hidden": (256, 256, 256),
               "model.diffusion.trace": "exact", "train.patience": 0, "data.latents": "sample"}  # fmt: skip


def models() -> dict:
    """name -> list of stages, each (config overrides, epochs); a later stage reads the codes of the one before."""
    return {
        "VAE (one stage)": [(VAE, 300)],
        "MADE (one stage)": [(AR | {"model.autoregressive.arch": "made", "model.autoregressive.hidden": (512,)}, 300)],
        "Gated PixelCNN (one stage)": [(GATED, 60)],
        "VQ-VAE + transformer prior": [(VQ, 300), (TRANSFORMER, 200)],
        "FSQ + gated PixelCNN prior": [(FSQ, 300), (GATED, 100)],
        "VAE + latent diffusion": [(VAE, 300), (LATENT_DDPM, 400)],
    }


def write_npz(path: Path) -> None:
    """family_comparison's binarized digits (one fixed draw, its test fifth) as an npz source."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("family_comparison", Path(__file__).parents[1] / "family_comparison"
                                                  / "main.py")  # fmt: skip
    fc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fc)
    src = fc.binarized_source("digits")
    np.savez(path, image=src.x.astype(np.uint8), label=src.y, test_image=src.test_x.astype(np.uint8),
             test_label=src.test_y)  # fmt: skip


def config(name: str, over: dict, epochs: int, data: str, smoke: bool):
    c = base_config()
    c.name = name
    c.data.name = data
    c.train.batch_size, c.train.patience, c.train.checkpoint_every = 64, 20, 1000
    c.train.epochs = 2 if smoke else epochs
    c.optim.lr = 1e-3
    c.eval.classifier_dir = "runs/classifiers"
    for field, v in over.items():
        node = c
        *head, last = field.split(".")
        for h in head:
            node = node[h]
        node[last] = v
    if smoke:
        fam = c.model.family
        for f, v in {"vae": (("nll_samples", 20), ("nll_chunk", 10)), "diffusion": (("ode_steps", 4),
                                                                                   ("timesteps", 50))}.get(fam, ()):
            c.model[fam][f] = v
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/latent_digits/results")
    ap.add_argument("--workdir", default="runs/latent_digits", help="the run folders of every stage")
    ap.add_argument("--models", default="", help="comma-separated subset of the model names")
    ap.add_argument("--smoke", action="store_true", help="2 epochs per stage, few samples: the plumbing only")
    a = ap.parse_args(argv)
    out, work = Path(a.out), Path(a.workdir)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    npz = work / "digits-binarized.npz"
    write_npz(npz)
    chosen = models()
    if a.models:
        chosen = {k: v for k, v in chosen.items() if f",{k}," in f",{a.models},"}
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for name, stages in chosen.items():
        data, params, train_s, epochs = f"npz:{npz}", 0, 0.0, []
        for i, (over, ep) in enumerate(stages):
            run = work / f"{name.split(' ')[0].lower()}-{i}-{over['model.family']}"
            cfg = config(f"{name} / stage {i + 1}", over, ep, data, a.smoke)
            if i == len(stages) - 1:
                cfg.eval.max_samples = 40 if a.smoke else 2500
            model = genjax.fit(cfg, workdir=run, overwrite=True, progress=False)
            trained = {e for pl in model.family.players for e in (pl.params or (pl.name,))}  # not a weight average
            params += param_count({k: v for k, v in model.params.items() if k in trained})
            train_s += model.result.train_seconds
            epochs.append(f"{len(model.result.history)} ({int(model.result.state.es.best_epoch)})")
            data = f"latents:{run}"
        m = genjax.evaluate(model, sample_metrics=True)
        nll = m.get("two_stage", m)
        s = m["samples"]
        fid = next(k for k in s["model"] if k.startswith("fid_"))
        kid = next(k for k in s["model"] if k.startswith("kid_"))
        imgs = np.asarray(model.sample(64, seed=0))
        results[name] = {
            "test_nll_nats": nll.get("nll"), "nll_kind": nll.get("estimator", nll.get("why")),
            "bits_per_dim": nll.get("bits_per_dim"), "fid": s["model"][fid], "kid": s["model"][kid],
            "precision": s["model"]["precision"], "recall": s["model"]["recall"], "fid_real": s["real_vs_real"][fid],
            "kid_real": s["real_vs_real"][kid], "classifier": s["classifier"], "n_samples": s["n"], "params": params,
            "train_s": train_s, "epochs": epochs, "codes_nll": m.get("nll") if "two_stage" in m else None,
            "samples": np.clip(imgs, 0, 1).round(3).tolist(),
        }  # fmt: skip
        print(json.dumps({"model": name} | {k: v for k, v in results[name].items() if k != "samples"}), flush=True)
        path.write_text(json.dumps(results) + "\n")
        report(results, out, a)
    return results


def report(results: dict, out: Path, a) -> None:
    panels = {name: (r["samples"], f"FID {r['fid']:.1f}") for name, r in results.items()}
    sample_panels(panels, out / "samples.png")
    r0 = next(iter(results.values()))
    lines = [
        "# Two-stage (latent) models and one-stage models on binarized 8x8 digits",
        "",
        f"Command: `python experiments/latent_digits/main.py{' --smoke' if a.smoke else ''}`. The data, split and "
        "binarization of `experiments/family_comparison` (1,294 training, 144 validation, 359 test images); batch "
        "64, Adam 1e-3, early stopping on the validation NLL (patience 20; the latent DDPM without), the "
        "best-validation weights. NLL: nats per test image, lower is better; for a two-stage model the bound "
        "`genjax eval` reports (the estimator column says which), '-' where the pair defines none. Sample metrics: "
        f"{r0['n_samples']} samples against the test images in the feature space of the domain classifier "
        f"`{r0['classifier']}` (FID / KID lower is better, precision / recall higher; real training images against "
        f"the same test images: FID {r0['fid_real']:.2f}, KID {r0['kid_real']:.2f}). Params and train seconds: all "
        "stages together.",
        "",
        "| model | test NLL (nats) | bits/dim | FID | KID | precision | recall | params | epochs (best) | train s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for name, r in results.items():
        nll = "-" if r["test_nll_nats"] is None else f"{r['test_nll_nats']:.2f}"
        bpd = "-" if r["bits_per_dim"] is None else f"{r['bits_per_dim']:.4f}"
        ep = " + ".join(r["epochs"])
        lines.append(f"| {name} | {nll} | {bpd} | {r['fid']:.2f} | {r['kid']:.2f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {r['params']:,} | {ep} | {r['train_s']:.0f} |")  # fmt: skip
    lines += ["", "What each NLL is:", ""]
    lines += [f"- {name}: {r['nll_kind']}" for name, r in results.items()]
    lines += ["", "![samples](samples.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    jax.config.update("jax_platforms", "cpu")
    main()
