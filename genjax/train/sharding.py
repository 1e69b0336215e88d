"""One device mesh for every run: axes ``members`` (folds, seeds, sweep settings: the vmapped
axis) and ``data`` (each member's batch split across devices).

``train.mesh`` names the axis sizes: ``""`` (default) puts every device on ``data``;
``"members=5,data=2"``, ``"data=-1"`` (``-1``: the devices left over). The training state is
split over ``members`` and replicated over ``data``; the batches drawn inside the jitted epoch
are constrained to be split over ``data`` (``with_sharding_constraint``), so each device computes
its slice and, the loss being a mean, XLA inserts the all-reduce of the gradients. The data pool
and evaluation batches are replicated. A family never sees the mesh.

Across hosts: ``initialize_distributed()`` calls ``jax.distributed.initialize()`` when the
environment names a coordinator (``GENJAX_COORDINATOR=host:port``, ``GENJAX_NUM_PROCESSES``,
``GENJAX_PROCESS_ID``; or what ``jax.distributed`` detects by itself on Cloud TPU / SLURM /
Open MPI when ``GENJAX_DISTRIBUTED=1``). Every process then runs the same program on the same
data (deterministic in ``data.seed``), arrays are assembled from each process's local shards
(``jax.make_array_from_callback``), and only process 0 writes files or prints progress.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXES = ("members", "data")


def initialize_distributed() -> bool:
    """``jax.distributed.initialize`` from the environment (see the module docstring); returns
    whether several processes take part. Safe to call twice."""
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    coord = os.environ.get("GENJAX_COORDINATOR")
    if coord:
        n, pid = os.environ.get("GENJAX_NUM_PROCESSES"), os.environ.get("GENJAX_PROCESS_ID")
        if n is None or pid is None:
            raise ValueError(
                "GENJAX_COORDINATOR is set, so GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID must be set as well."
            )
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
        jax.distributed.initialize(coord, num_processes=int(n), process_id=int(pid))
    elif os.environ.get("GENJAX_DISTRIBUTED") == "1":
        jax.distributed.initialize()
    return jax.process_count() > 1


def is_main_process() -> bool:
    return jax.process_index() == 0


def parse_mesh(spec: str) -> dict[str, int]:
    """``"members=5,data=2"`` -> ``{"members": 5, "data": 2}``; ``""`` -> ``{}``."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in str(spec).split(","))):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in AXES or name in out:
            raise ValueError(
                f"train.mesh={spec!r}: write axis=size pairs over {' and '.join(AXES)}, e.g. 'members=2,data=2'."
            )
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(
                f"train.mesh={spec!r}: the size of {name} must be an integer, got {value.strip()!r}."
            ) from None
        if out[name] == 0 or out[name] < -1:
            raise ValueError(f"train.mesh={spec!r}: the size of {name} must be positive or -1, got {out[name]}.")
    if list(out.values()).count(-1) > 1:
        raise ValueError(f"train.mesh={spec!r}: only one axis may be -1.")
    return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """A mesh and how a run uses it."""

    mesh: Mesh
    stacked: bool  # the state has a leading members axis

    @property
    def members(self) -> int:
        return self.mesh.shape["members"]

    @property
    def data(self) -> int:
        return self.mesh.shape["data"]

    def state_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec("members") if self.stacked else PartitionSpec())

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def constrain_batches(self, batches):
        """Inside the epoch: ``[steps, batch, ...]`` leaves split over ``data`` along the batch."""
        if self.data == 1:
            return batches
        spec = NamedSharding(self.mesh, PartitionSpec(None, "data"))
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, spec), batches)

    def put_state(self, state):
        return put(state, self.state_sharding())

    def put_data(self, data):
        return put(data, self.replicated())


def plan(spec: str, n_members: int | None, batch_size: int, devices=None) -> Plan:
    """The mesh for a run of ``n_members`` members (``None``: one model, no members axis) whose
    steps draw ``batch_size`` examples. Refuses, with one sentence, a members axis that does not
    divide the member count or a data axis that does not divide the batch."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    sizes = parse_mesh(spec) or {"data": -1}
    m, d = sizes.get("members", 1), sizes.get("data", 1)
    if m == -1:
        m = max(1, n // d)
    if d == -1:
        d = max(1, n // m)
    if m * d > n:
        raise ValueError(f"train.mesh={spec!r} asks for {m} x {d} devices, but there are {n}.")
    count = 1 if n_members is None else n_members
    if count % m:
        raise ValueError(
            f"train.mesh={spec!r}: the members axis ({m} devices) does not divide the run's {count} members."
        )
    if batch_size % d:
        raise ValueError(
            f"train.mesh={spec!r}: the data axis ({d} devices) does not divide the batch of {batch_size} examples "
            f"per step; change train.batch_size or train.mesh."
        )
    mesh = Mesh(np.array(devices[: m * d]).reshape(m, d), AXES)
    return Plan(mesh, stacked=n_members is not None)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def put(tree, sharding: NamedSharding):
    """Place host or device arrays on ``sharding``; in a multi-process run each process supplies
    its own shards (every process holds the same values)."""

    def one(x):
        if _is_key(x):
            return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        a = np.asarray(x) if not isinstance(x, jax.Array) or x.is_fully_addressable else x
        return jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a[idx]))

    return jax.tree.map(one, tree)


def to_host(tree):
    """Numpy copies of (possibly multi-process) arrays."""
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def describe(p: Plan) -> str:
    n = math.prod(p.mesh.devices.shape)
    return f"mesh members={p.members} x data={p.data} over {n} {jax.default_backend()} device(s)"
