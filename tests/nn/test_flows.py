"""Every flow layer: inverse(forward(x)) == x and log|det J| == log|det jax.jacobian|, with and
without a context vector, on random inputs and random (not identity) parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from genjax.nn.flows import MAF, ActNorm, Coupling, Flow, Invertible1x1Conv, Permute, alternating_mask, half_mask
from genjax.nn.flows.spline import rqs_forward, rqs_inverse

D, C = 5, 3


def _randomize(module, key, scale=0.3):
    graph, params, rest = nnx.split(module, nnx.Param, ...)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    params = jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    return nnx.merge(graph, params, rest)


def _layers(ctx_dim):
    r = nnx.Rngs(0)
    return {
        "affine_alternating": Coupling(alternating_mask(D), (16,), "affine", ctx_dim, rngs=r),
        "affine_half": Coupling(half_mask(D), (16,), "affine", ctx_dim, rngs=r),
        # its own stream, so the other layers' weights are those the tolerances below were set on
        "affine_constant_mask": Coupling(alternating_mask(D, 1), (16,), "affine", ctx_dim, constant_mask=True,
                                         rngs=nnx.Rngs(1)),  # fmt: skip
        "additive": Coupling(alternating_mask(D, 1), (16,), "additive", ctx_dim, rngs=r),
        "spline": Coupling(half_mask(D, False), (16,), "spline", ctx_dim, bins=6, bound=3.0, rngs=r),
        "maf": MAF(D, (16, 16), ctx_dim, rngs=r),
        "iaf": MAF(D, (16, 16), ctx_dim, inverse_autoregressive=True, rngs=r),
        "actnorm": ActNorm(D),
        "permute": Permute(D, seed=1),
        "reverse": Permute(D, reverse=True),
    }


def _logdet_float64(layer, x, ctx) -> float:
    """log|det J| of ``layer.forward`` at ``x`` (any shape): the Jacobian by autodiff and its
    slogdet, both in float64 on a float64 copy of the layer (the oracle; a float32 slogdet of ten
    composed random layers is itself off by ~4e-3, which would make the tolerance a property of
    the machine)."""
    graph, state = nnx.split(layer)
    shape = np.shape(x)
    with jax.enable_x64(True):
        f64 = lambda a: np.asarray(a, np.float64) if np.issubdtype(np.asarray(a).dtype, np.floating) else a  # noqa: E731
        c64 = None if ctx is None else f64(ctx)

        @jax.jit
        def logdet(st, v):
            out = lambda u: nnx.merge(graph, st).forward(u.reshape(shape), c64)[0].ravel()  # noqa: E731
            return jnp.linalg.slogdet(jax.jacfwd(out)(v))[1]

        ld = logdet(jax.tree.map(f64, state), f64(x).ravel())
        assert ld.dtype == np.float64
        return float(ld)


@pytest.mark.parametrize("ctx_dim", [0, 2])
def test_layers_invert_and_logdet_matches_jacobian(ctx_dim):
    x = jax.random.normal(jax.random.key(1), (D,)) * 1.5
    ctx = jax.random.normal(jax.random.key(2), (ctx_dim,)) if ctx_dim else None
    layers = _layers(ctx_dim)
    # the nine kinds (the constant-mask coupling is the alternating one's twin: a tenth random
    # layer of exp(s) amplification would make the float32 round trip a property of the draw)
    nine = [m for k, m in _layers(ctx_dim).items() if k != "affine_constant_mask"]
    layers["composed"] = Flow([_randomize(m, jax.random.key(9)) for m in nine])
    for name, layer in layers.items():
        layer = _randomize(layer, jax.random.key(3)) if name != "composed" else layer
        def there_and_back(x, c, layer=layer):
            z, ld = layer.forward(x, c)
            return (z, ld), layer.inverse(z, c)

        (z, ld), (back, ild) = jax.jit(there_and_back)(x, ctx)  # one compile per layer, both ways
        # nine random layers (two with exp(alpha) amplification) accumulate float32 error
        np.testing.assert_allclose(back, x, atol=1e-3 if name == "composed" else 2e-4, err_msg=name)
        # the float32 layer against the float64 oracle: its log-det sums ~50 float32 terms of
        # magnitude < 5 (relative rounding 6e-8 each), so |error| < 50 * 5 * 6e-8 ~ 2e-5
        np.testing.assert_allclose(ld, _logdet_float64(layer, x, ctx), rtol=0, atol=3e-5, err_msg=name)
        # the inverse's log-det is -log|det J_f| at the point it returns (x up to float32 round trip)
        np.testing.assert_allclose(ild, -_logdet_float64(layer, back, ctx), rtol=0, atol=3e-5, err_msg=name)
        if name not in ("permute", "reverse"):
            assert not np.allclose(z, x), name  # the randomized layer is not the identity


def test_repeated_blocks_run_as_one_scan_with_the_layers_values(ctx_dim=2):
    """A flow's repeated blocks (here ActNorm + spline coupling three times, then MAF + Permute
    twice and a last MAF) run as scans over their stacked variables: the same values as the
    layers applied one after another, both ways, and the float64 Jacobian's log-det."""
    r = nnx.Rngs(0)
    layers = []
    for i in range(3):
        spline = Coupling(alternating_mask(D, i % 2), (16,), "spline", ctx_dim, bins=6, bound=3.0, rngs=r)
        layers += [ActNorm(D), spline]
    layers += [MAF(D, (16,), ctx_dim, rngs=r), Permute(D, seed=1), MAF(D, (16,), ctx_dim, rngs=r), Permute(D, seed=2)]
    layers += [MAF(D, (16,), ctx_dim, rngs=r)]
    flow = _randomize(Flow(layers, scan=True), jax.random.key(4))
    x = jax.random.normal(jax.random.key(1), (D,)) * 1.5
    ctx = jax.random.normal(jax.random.key(2), (ctx_dim,))
    scans = [e for e in jax.make_jaxpr(flow.forward)(x, ctx).eqns if e.primitive.name == "scan"]
    assert [e.params["length"] for e in scans] == [3, 2]
    unscanned = _randomize(Flow(layers), jax.random.key(4))  # the default: the layers one by one
    assert not [e for e in jax.make_jaxpr(unscanned.forward)(x, ctx).eqns if e.primitive.name == "scan"]

    def one_after_another(method, v):
        total = jnp.zeros(())
        for layer in flow.layers if method == "forward" else reversed(flow.layers):
            v, ld = getattr(layer, method)(v, ctx)
            total = total + ld
        return v, total

    z, ld = jax.jit(flow.forward)(x, ctx)
    want_z, want_ld = jax.jit(lambda v: one_after_another("forward", v))(x)
    np.testing.assert_allclose(z, want_z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, want_ld, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ld, _logdet_float64(flow, x, ctx), rtol=0, atol=3e-5)
    back, ild = jax.jit(flow.inverse)(z, ctx)
    want_back, _ = jax.jit(lambda v: one_after_another("inverse", v))(z)
    # MAF's sequential inversion amplifies float32 rounding (x comes back to ~2e-3, as it does
    # layer by layer): the two agree to 1e-4, and each log-det is within 3e-5 of the float64
    # Jacobian's at the point it returns
    np.testing.assert_allclose(back, want_back, rtol=0, atol=1e-4)
    np.testing.assert_allclose(back, x, atol=5e-3)
    np.testing.assert_allclose(ild, -_logdet_float64(flow, back, ctx), rtol=0, atol=3e-5)


def test_a_constant_mask_is_the_variable_masks_coupling_out_of_the_state(ctx_dim=2):
    """``constant_mask=True``: the same coupling (same weights, same values both ways, bit for
    bit) with its mask a static attribute, so the state a compiled step takes has no mask in it;
    ``build_flow`` makes the masks constant except in a scanned flow, whose alternating couplings
    share one block through their stacked mask variables."""
    from genjax.models.flow import build_flow, default_config

    for kind in ("affine", "additive", "spline"):
        var = _randomize(Coupling(alternating_mask(D, 1), (16,), kind, ctx_dim, rngs=nnx.Rngs(3)), jax.random.key(5))
        const = Coupling(alternating_mask(D, 1), (16,), kind, ctx_dim, constant_mask=True, rngs=nnx.Rngs(3))
        nnx.update(const, nnx.state(var, nnx.Param))
        assert "mask" in nnx.state(var) and "mask" not in nnx.state(const), kind
        x = jax.random.normal(jax.random.key(1), (D,)) * 1.5
        ctx = jax.random.normal(jax.random.key(2), (ctx_dim,))
        for method in ("forward", "inverse"):
            want, got = jax.jit(getattr(var, method))(x, ctx), jax.jit(getattr(const, method))(x, ctx)
            np.testing.assert_array_equal(got[0], want[0], err_msg=f"{kind} {method}")
            np.testing.assert_array_equal(got[1], want[1], err_msg=f"{kind} {method}")
        assert not np.allclose(jax.jit(const.forward)(x, ctx)[0], x), kind  # not the identity

    def masks(kind):
        mcfg = default_config()
        mcfg.update(kind=kind, hidden=(8,), n_layers=2)
        flow = build_flow(mcfg, (D,), rngs=nnx.Rngs(0))
        return [p for p, _ in nnx.to_flat_state(nnx.state(flow)) if "mask" in p]

    assert masks("realnvp") == [] and masks("nice") == []
    assert len(masks("spline")) == 2  # one per coupling, stacked by the scan


def test_context_changes_conditional_layers():
    for layer in (Coupling(half_mask(D), (8,), "affine", 2, rngs=nnx.Rngs(0)), MAF(D, (8,), 2, rngs=nnx.Rngs(0))):
        layer = _randomize(layer, jax.random.key(0))
        x = jnp.ones(D)
        a, _ = layer.forward(x, jnp.zeros(2))
        b, _ = layer.forward(x, jnp.ones(2))
        assert not np.allclose(a, b)


def test_1x1_conv_on_an_image_example():
    conv = _randomize(Invertible1x1Conv(C, rngs=nnx.Rngs(0)), jax.random.key(1), 0.1)
    x = jax.random.normal(jax.random.key(2), (4, 4, C))
    z, ld = conv.forward(x)
    back, ild = conv.inverse(z)
    np.testing.assert_allclose(back, x, atol=1e-4)
    jac = jax.jacobian(lambda v: conv.forward(v.reshape(4, 4, C))[0].ravel())(x.ravel())
    np.testing.assert_allclose(ld, jnp.linalg.slogdet(jac)[1], atol=1e-3)
    np.testing.assert_allclose(ild, -ld, atol=1e-5)


def test_actnorm_data_dependent_init():
    x = 3.0 + 2.5 * jax.random.normal(jax.random.key(0), (256, 4, 4, C))
    an = ActNorm(C)
    an.initialize(x)
    z, ld = jax.vmap(an.forward)(x)
    np.testing.assert_allclose(jnp.mean(z, (0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(jnp.std(z, (0, 1, 2)), 1.0, atol=1e-4)
    np.testing.assert_allclose(ld[0], 16 * jnp.sum(an.log_scale[...]), rtol=1e-6)


def test_spline_identity_tails_and_no_nan_out_of_range():
    w, h, d = (jax.random.normal(jax.random.key(i), (n,)) for i, n in ((0, 6), (1, 6), (2, 5)))
    for x in (-10.0, -3.0, 3.5, 50.0):
        y, ld = rqs_forward(jnp.asarray(x), w, h, d, 3.0)
        assert float(y) == x and float(ld) == 0.0
    xs = jnp.linspace(-2.99, 2.99, 101)
    ys, lds = jax.vmap(rqs_forward, (0, None, None, None, None))(xs, w, h, d, 3.0)
    assert np.all(np.diff(np.asarray(ys)) > 0)  # monotone
    back, _ = jax.vmap(rqs_inverse, (0, None, None, None, None))(ys, w, h, d, 3.0)
    np.testing.assert_allclose(back, xs, atol=1e-4)
    g = jax.grad(lambda v: rqs_forward(v, w, h, d, 3.0)[0])
    np.testing.assert_allclose(np.exp(lds[50]), g(xs[50]), rtol=1e-4)
    assert np.all(
        np.isfinite(np.asarray(jax.grad(lambda v: jnp.sum(rqs_forward(v, w, h, d, 3.0)[1]))(jnp.asarray(100.0))))
    )


def test_spline_is_elementwise_over_batched_parameters_and_bins_like_searchsorted():
    from genjax.nn.flows.spline import _bin, _knots

    k = jax.random.split(jax.random.key(3), 4)
    x = 2.5 * jax.random.normal(k[0], (5, 3))
    w, h, d = (jax.random.normal(k_, (5, 3, n)) for k_, n in ((k[1], 6), (k[2], 6), (k[3], 5)))
    for fn in (rqs_forward, rqs_inverse):
        batched = fn(x, w, h, d, 3.0)
        one = jax.vmap(jax.vmap(fn, (0, 0, 0, 0, None)), (0, 0, 0, 0, None))(x, w, h, d, 3.0)
        for a, b in zip(batched, one):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
            assert not np.allclose(a[0], b[1])  # the rows differ, so a mixed-up row would fail
    cw = np.asarray(_knots(w[0, 0], h[0, 0], d[0, 0], 3.0)[0])
    # values on the knots themselves, between them and at both ends of (-3, 3)
    v = np.concatenate([cw[1:-1], (cw[:-1] + cw[1:]) / 2, [-3.0 + 1e-6, 3.0 - 1e-6]]).astype(np.float32)
    want = np.clip(np.searchsorted(cw, v, side="right") - 1, 0, len(cw) - 2)
    np.testing.assert_array_equal(_bin(jnp.asarray(cw), jnp.asarray(v)), want)


@pytest.mark.parametrize("style", ["glow", "realnvp"])
def test_multiscale_image_flow_inverts_with_exact_logdet(style):
    from genjax.nn.flows import ConvCoupling, MultiScale, squeeze, unsqueeze

    x = jax.random.uniform(jax.random.key(0), (8, 8, 1))
    np.testing.assert_array_equal(unsqueeze(squeeze(x)), x)
    ms = MultiScale((8, 8, 1), levels=2, steps=2, hidden=8, style=style, rngs=nnx.Rngs(0))
    ms.initialize(jax.random.uniform(jax.random.key(5), (16, 8, 8, 1)))
    ms = _randomize(ms, jax.random.key(1), 0.05)
    z, ld = jax.jit(lambda v: ms.forward(v))(x)
    assert z.shape == (64,)
    back, ild = jax.jit(lambda v: ms.inverse(v))(z)
    np.testing.assert_allclose(back, x, atol=1e-4)
    # against the float64 Jacobian: the float32 log-det sums a few hundred terms of magnitude < 5
    np.testing.assert_allclose(ld, _logdet_float64(ms, x, None), rtol=0, atol=1e-4)
    np.testing.assert_allclose(ild, -_logdet_float64(ms, back, None), rtol=0, atol=1e-4)
    cc = _randomize(ConvCoupling((4, 4, 2), "checkerboard", 0, 8, context_dim=3, rngs=nnx.Rngs(0)), jax.random.key(2))
    v, c = jax.random.normal(jax.random.key(3), (4, 4, 2)), jnp.ones(3)
    zz, l2 = cc.forward(v, c)
    np.testing.assert_allclose(cc.inverse(zz, c)[0], v, atol=1e-5)
    np.testing.assert_allclose(l2, _logdet_float64(cc, v, c), rtol=0, atol=1e-4)


def test_logit_transform_logdet():
    from genjax.nn.flows import LogitTransform

    lt = LogitTransform(0.05)
    x = jax.random.uniform(jax.random.key(0), (D,))
    y, ld = lt.forward(x)
    np.testing.assert_allclose(lt.inverse(y)[0], x, atol=1e-5)
    np.testing.assert_allclose(ld, jnp.linalg.slogdet(jax.jacobian(lambda v: lt.forward(v)[0])(x))[1], rtol=1e-5)
    np.testing.assert_allclose(lt.inverse(y)[1], -ld, rtol=1e-6)


@pytest.mark.parametrize("style", ["glow", "realnvp"])
def test_image_flow_on_a_batch_equals_it_vmapped_over_examples(style):
    """The image flows run on the whole batch (``Flow(batched=True)``): z, x and every example's
    log-det equal those of the same layers vmapped one example at a time, with a context."""
    from genjax.nn.flows import LogitTransform, MultiScale

    xb = jax.random.uniform(jax.random.key(0), (5, 8, 8, 1), minval=0.05, maxval=0.95)
    cb = jax.random.normal(jax.random.key(1), (5, 3))
    ms = MultiScale((8, 8, 1), levels=2, steps=2, hidden=8, style=style, context_dim=3, rngs=nnx.Rngs(0))
    ms.initialize(xb, cb)
    ms = _randomize(ms, jax.random.key(2), 0.05)
    layers = [LogitTransform(0.05, event_ndim=3), ms]
    batch, vmapped = Flow(layers, batched=True), Flow(layers)
    z, ld = batch.over_batch("forward", xb, cb)
    zv, ldv = vmapped.over_batch("forward", xb, cb)
    assert z.shape == (5, 64) and ld.shape == (5,)
    np.testing.assert_allclose(z, zv, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ld, ldv, rtol=1e-6, atol=1e-4)
    assert np.ptp(np.asarray(ld)) > 1e-2  # the examples' log-dets differ: a batch sum would show
    x, ild = batch.over_batch("inverse", z, cb)
    xv, ildv = vmapped.over_batch("inverse", z, cb)
    np.testing.assert_allclose(x, xv, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ild, ildv, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(x, xb, atol=1e-4)
