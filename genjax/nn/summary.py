"""Model size: a per-layer parameter table, and what weight sharing saves.

A dense layer from n_(l-1) to n_l units has n_l * n_(l-1) + n_l parameters, so an MLP has
sum_l n_l n_(l-1) + n_l. A conv layer shares one k x k x C_in x C_out kernel over every position:
k^2 C_in C_out + C_out parameters, where a dense layer between the same input and output maps
would need (H_in W_in C_in)(H_out W_out C_out) + H_out W_out C_out.
"""

from __future__ import annotations

import jax
from flax import nnx

from genjax.nn.spectral import SNConv, SNLinear


def _count(module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def param_count(params: dict) -> int:
    """Trainable parameters (``nnx.Param`` leaves) of a family's params ``{player: nnx.State}``;
    masks, dropout rates and other variables are not counted."""
    return sum(x.size for s in params.values() for x in jax.tree.leaves(nnx.split_state(s, nnx.Param, ...)[0]))


def param_table(module: nnx.Module) -> list[dict]:
    """One row per Linear / Conv / ConvTranspose layer (and one for any other parameters):
    ``layer`` (path), ``kind``, ``shape`` (kernel), ``params``, and for conv layers with known
    feature-map sizes ``dense_equivalent``."""
    rows, counted = [], 0
    for path, node in nnx.iter_graph(module):
        kinds = {nnx.Linear: "dense", nnx.Conv: "conv", nnx.ConvTranspose: "conv_transpose"}
        kinds |= {SNLinear: "dense (SN)", SNConv: "conv (SN)"}
        if type(node) not in kinds:
            continue
        kind = kinds[type(node)]
        n = _count(node)
        counted += n
        row = {"layer": "/".join(str(p) for p in path), "kind": kind, "shape": list(node.kernel.shape), "params": n}
        if not kind.startswith("dense") and getattr(node, "in_map", None):
            (hi, wi, ci), (ho, wo, co) = node.in_map, node.out_map
            row["dense_equivalent"] = hi * wi * ci * ho * wo * co + ho * wo * co
        rows.append(row)
    rest = _count(module) - counted
    if rest:
        rows.append({"layer": "(other parameters)", "kind": "other", "shape": [], "params": rest})
    return rows


def mlp_param_count(sizes) -> int:
    """sum_l n_l * n_(l-1) + n_l for widths ``(n_0, ..., n_L)``."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def format_table(rows: list[dict]) -> str:
    """A Markdown table with a total line."""
    has_dense = any("dense_equivalent" in r for r in rows)
    head = "| layer | kind | kernel | params |" + (" dense equivalent |" if has_dense else "")
    sep = "| --- | --- | --- | ---: |" + (" ---: |" if has_dense else "")
    lines = [head, sep]
    for r in rows:
        line = f"| {r['layer']} | {r['kind']} | {'x'.join(map(str, r['shape']))} | {r['params']:,} |"
        if has_dense:
            line += f" {r['dense_equivalent']:,} |" if "dense_equivalent" in r else f" {r['params']:,} |"
        lines.append(line)
    total = sum(r["params"] for r in rows)
    line = f"| **total** | | | **{total:,}** |"
    if has_dense:
        dense = sum(r.get("dense_equivalent", r["params"]) for r in rows)
        line += f" **{dense:,}** |"
        lines += [
            line,
            "",
            f"Weight sharing: the conv layers use {total:,} parameters where dense layers between the "
            f"same feature maps would use {dense:,} ({dense / total:.1f}x).",
        ]
    else:
        lines.append(line)
    return "\n".join(lines)


__all__ = ["param_count", "param_table", "mlp_param_count", "format_table"]
