"""A stand-in for Apple's `coreai.runtime`, for running the card's Python snippets off-device.

FAKE_CONTRACTS (JSON) maps each asset path to the function, inputs, states and outputs the
bytes declare (dtype, shape; -1 is dynamic), as `qconv inspect` reads them. Every call is
checked against it: exactly those input and state names, dtypes and shapes, and the run
protocol of the contract:
- pipelined: position_ids holds 0..P-1 with P = calls so far; states are the same arrays every
  call (carried), and what this fake writes into keyCache at P-1 is still there on later calls;
- host-cache: position_ids and causal_mask follow the rule, and the K/V columns, conv and rec
  states this fake returned were written back by the caller at the right positions.
A violation raises, so the snippet exits non-zero. Outputs are zeros except the markers."""
import atexit
import collections
import json
import os
import sys

import numpy as np

_CONTRACTS = json.loads(os.environ["FAKE_CONTRACTS"])
_DTYPES = {"f16": np.float16, "f32": np.float32, "si32": np.int32}
CALLS = collections.Counter()
atexit.register(lambda: print("FAKE_CALLS " + json.dumps(CALLS, sort_keys=True), file=sys.stderr))


class NDArray:
    def __init__(self, data):
        if not isinstance(data, np.ndarray):
            raise TypeError("NDArray wants a numpy array, got %r" % type(data))
        self._a = data

    def numpy(self):
        return self._a


def _check(kind, name, arr, spec):
    dtype, shape = spec
    if arr.dtype != np.dtype(_DTYPES[dtype]):
        raise TypeError("%s %s: dtype %s, the bytes say %s" % (kind, name, arr.dtype, dtype))
    if len(arr.shape) != len(shape) or any(s != -1 and s != d for s, d in zip(shape, arr.shape)):
        raise ValueError("%s %s: shape %s, the bytes say %s" % (kind, name, arr.shape, shape))


class _Function:
    def __init__(self, asset, c):
        self.asset, self.c, self.calls = asset, c, 0
        self.states = None

    async def __call__(self, inputs, state=None):
        c = self.c
        state = state or {}
        if sorted(inputs) != sorted(c["inputs"]):
            raise KeyError("inputs %s, the bytes declare %s" % (sorted(inputs), sorted(c["inputs"])))
        if sorted(state) != sorted(c["states"]):
            raise KeyError("states %s, the bytes declare %s" % (sorted(state), sorted(c["states"])))
        for n, a in inputs.items():
            _check("input", n, a.numpy(), c["inputs"][n])
        for n, a in state.items():
            _check("state", n, a.numpy(), c["states"][n])
        self.calls += 1
        CALLS[self.asset] += 1
        if c["contract"] == "pipelined":
            return self._pipelined(inputs, state)
        return self._host(inputs)

    def _pipelined(self, inputs, state):
        pos = inputs["position_ids"].numpy()
        p = pos.shape[-1]
        if not np.array_equal(pos[0], np.arange(p)):
            raise ValueError("position_ids %s: want 0..P-1" % pos)
        arrays = {n: a.numpy() for n, a in state.items()}
        if self.states is None:
            self.states = arrays
            self.p = 0
        for n, a in arrays.items():
            if a is not self.states[n]:
                raise ValueError("state %s is a new array: the caller must carry the same one" % n)
        if p != self.p + 1:
            raise ValueError("position_ids length %d after %d steps: P must be tokens so far" % (p, self.p))
        k = arrays["keyCache"]
        if k.shape[3] < p:
            raise ValueError("keyCache holds %d positions, P is %d" % (k.shape[3], p))
        for j in range(p - 1):  # what earlier steps wrote is still there
            if k[0, 0, 0, j, 0] != j + 1:
                raise ValueError("keyCache lost position %d" % j)
        k[0, 0, 0, p - 1, 0] = p
        self.p = p
        v = self.c["outputs"]["logits"][1][-1]
        logits = np.zeros((1, 1, v), np.float16)
        logits[0, 0, (p * 5) % v] = 1
        return {"logits": NDArray(logits)}

    def _host(self, inputs):
        a = {n: x.numpy() for n, x in inputs.items()}
        q = a["input_ids"].shape[1]
        pk = a["past_k"]
        ctx = pk.shape[3]
        pos = int(a["position_ids"][0, 0])
        if not np.array_equal(a["position_ids"][0], np.arange(pos, pos + q)):
            raise ValueError("position_ids %s" % a["position_ids"])
        m = a["causal_mask"]
        for i in range(q):
            want = np.full(ctx + q, -1e4, np.float16)
            want[:pos] = 0
            want[ctx:ctx + i + 1] = 0
            if not np.array_equal(m[0, 0, i], want):
                raise ValueError("causal_mask row %d at position %d breaks the rule" % (i, pos))
        # The caller wrote every K/V column this fake returned, at its position, and nothing else.
        cols = np.arange(ctx)
        want = np.where(cols < pos, cols + 1, 0)
        if not (np.array_equal(pk[0, 0, 0, :, 0], want) and np.array_equal(a["past_v"][0, 0, 0, :, 0], -want)):
            raise ValueError("past_k/past_v columns at position %d are not the K/V returned so far" % pos)
        marker = pos  # conv/rec carry the position they were returned for
        if a["conv_state"].flat[0] != marker or a["rec_state"].flat[0] != marker:
            raise ValueError("conv_state/rec_state not carried: %s/%s at position %d" % (a["conv_state"].flat[0], a["rec_state"].flat[0], pos))
        outs = {}
        for n, (dtype, shape) in self.c["outputs"].items():
            outs[n] = np.zeros([d if d != -1 else 1 for d in shape], _DTYPES[dtype])
        for t in range(q):
            outs["k_cur"][0, 0, 0, t, 0] = pos + t + 1
            outs["v_cur"][0, 0, 0, t, 0] = -(pos + t + 1)
        outs["conv_cur"].flat[0] = pos + q
        outs["rec_cur"].flat[0] = pos + q
        outs["next_token"][...] = (pos * 5) % 1000
        return {n: NDArray(x) for n, x in outs.items()}


class AIModel:
    def __init__(self, asset):
        self.asset = asset

    @staticmethod
    async def load(path):
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
        if path not in _CONTRACTS:
            raise KeyError("asset %s is not a bundle's main asset" % path)
        return AIModel(path)

    def load_function(self, name):
        c = _CONTRACTS[self.asset]
        if name != c["function"]:
            raise KeyError("function %s, the bytes' is %s" % (name, c["function"]))
        return _Function(self.asset, c)
