"""keensight.nn.Network: a graph of keensight operators prepared once and run on the C++ engine."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core, _validate
from ._graph import ACTIVATION_KINDS, Graph, Node

PathLike = Union[str, "os.PathLike[str]"]

_MAGIC = "KSNET"
_FORMAT_VERSION = 1
_NO_ACTIVATION = (0, -math.inf, math.inf, 1 / 6, 0.5)


def _act(value: Any) -> Tuple[int, float, float, float, float]:
    """The graph's activation tuple as the engine's (kind code, lo, hi, alpha, beta)."""
    if value is None:
        return _NO_ACTIVATION
    kind, lo, hi, alpha, beta = value
    return (ACTIVATION_KINDS.index(kind), float(lo), float(hi), float(alpha), float(beta))


def _f32(a: Any, name: str) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _threads(value: Any) -> int:
    return 0 if value is None else _validate.num_threads(value, "threads")


class Network:
    """A CNN prepared once for keensight's engine: weights packed, buffers planned.

    Build one from an ONNX model with :meth:`from_onnx` (or from a
    :class:`keensight.nn.Graph`), then :meth:`run` batches of NCHW float32 images.
    Results do not depend on the batch size or the thread count.

    Thread safety: :meth:`run` may be called from several threads at once (each
    call takes its own activation arena); setting :attr:`threads` while another
    thread runs is safe too (a run uses the value it started with).

    Examples
    --------
    >>> import numpy as np
    >>> from keensight.nn import Network, Graph, Node
    >>> g = Graph(inputs={"x": (2, 3, 3)},
    ...           nodes=[Node("global_avg_pool", ["x"], "y")], outputs=["y"],
    ...           shapes={"x": (2, 3, 3), "y": (2, 1, 1)})
    >>> net = Network(g)
    >>> net.run(np.ones((1, 2, 3, 3), np.float32))["y"].ravel().tolist()
    [1.0, 1.0]
    """

    def __init__(self, graph: Graph, *, threads: Optional[int] = None) -> None:
        self._setup(graph, threads, owned=False)

    def _setup(self, graph: Graph, threads: Optional[int], owned: bool) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"graph: expected a keensight.nn.Graph, got {type(graph).__name__}")
        self._graph = graph
        self.threads = threads
        self._source: Any = None  # the ONNX model (path or proto) it came from, for outputs= it fused away
        self._rebuilt: Dict[Tuple[str, ...], "Network"] = {}
        self._lock = threading.Lock()
        self._build(owned)

    # -- construction -----------------------------------------------------------------------------

    @classmethod
    def from_onnx(cls, model: Any, *, input_shape: Optional[Sequence[int]] = None,
                  threads: Optional[int] = None, keep: Optional[Sequence[str]] = None) -> "Network":
        """Import an ONNX model (a path or an ``onnx.ModelProto``).

        Constants are folded, batch norm folded into the convolutions, activation chains
        (``x * Clip(x + 3, 0, 6) / 6`` ...) recognised and fused, residual adds fused into
        the convolution before them. ``input_shape`` (C, H, W) fixes dynamic spatial
        dimensions; ``keep`` names tensors that must stay requestable by ``run(outputs=)``
        (any tensor can be requested anyway: the network re-imports itself with them kept).

        Raises
        ------
        keensight.nn.UnsupportedOperatorError
            For an operator the engine does not run, naming it and its node.
        """
        from ._onnx import graph_from_onnx

        if isinstance(model, (str, os.PathLike)):
            model = _validate.input_file(model, "model")
        graph = graph_from_onnx(model, input_shape=input_shape, keep=list(keep) if keep else None)
        net = cls.__new__(cls)
        net._setup(graph, threads, owned=True)  # the graph's weights are released as the engine packs them
        del graph
        _release_freed_memory()
        net._source = (model, tuple(input_shape) if input_shape is not None else None)
        return net

    def _build(self, owned: bool = False) -> None:
        g = self._graph
        if not g.inputs:
            raise ValueError("graph: expected at least one input")
        net = _core.Network()
        ids: Dict[str, int] = {}
        self._weight_shapes_pending: List[Tuple[Tuple[int, ...], bool]] = []
        for name, shape in g.inputs.items():
            if len(shape) != 3:
                raise ValueError(f"graph: input {name!r} must have a (C, H, W) shape, got {shape}")
            c, h, w = (_validate.positive_int(v, f"input {name!r} shape") for v in shape)
            ids[name] = net.input(c, h, w)

        def tensor(t: str, node: Node) -> int:
            if t not in ids:
                raise ValueError(f"node {node.name or node.output!r} ({node.op}): unknown input tensor {t!r}")
            return ids[t]

        for node in g.nodes:
            a = node.attrs
            ins = [tensor(t, node) for t in node.inputs]
            act = _act(a.get("activation"))
            op = node.op
            try:
                if op == "conv":
                    w_ = _f32(node.weights["w"], "w")
                    b_ = node.weights.get("b")
                    out = net.conv(ins[0], w_, None if b_ is None else _f32(b_, "b"),
                                   list(a.get("stride", (1, 1))), list(a.get("pads", (0, 0, 0, 0))),
                                   list(a.get("dilation", (1, 1))), int(a.get("groups", 1)), act,
                                   ins[1] if len(ins) > 1 else -1)
                elif op == "max_pool":
                    out = net.max_pool(ins[0], list(a["kernel"]), list(a.get("stride", a["kernel"])),
                                       list(a.get("pads", (0, 0, 0, 0))), list(a.get("dilation", (1, 1))),
                                       bool(a.get("ceil_mode", False)))
                elif op == "avg_pool":
                    out = net.avg_pool(ins[0], list(a["kernel"]), list(a.get("stride", a["kernel"])),
                                       list(a.get("pads", (0, 0, 0, 0))), bool(a.get("ceil_mode", False)),
                                       bool(a.get("count_include_pad", False)))
                elif op == "global_avg_pool":
                    out = net.global_avg_pool(ins[0])
                elif op == "activation":
                    out = net.activation(ins[0], act)
                elif op in ("add", "mul"):
                    out = getattr(net, op)(ins[0], ins[1], act)
                elif op == "channel_affine":
                    sc, sh = node.weights.get("scale"), node.weights.get("shift")
                    out = net.channel_affine(ins[0], None if sc is None else _f32(sc, "scale"),
                                             None if sh is None else _f32(sh, "shift"), act)
                elif op == "concat":
                    out = net.concat(ins)
                elif op == "flatten":
                    out = net.flatten(ins[0])
                elif op == "dense":
                    w_ = _f32(node.weights["w"], "w")
                    b_ = node.weights.get("b")
                    out = net.dense(ins[0], w_, None if b_ is None else _f32(b_, "b"), act)
                elif op == "softmax":
                    out = net.softmax(ins[0])
                else:
                    raise ValueError(f"unknown keensight operator {op!r}")
            except (ValueError, TypeError) as e:
                raise type(e)(f"node {node.name or node.output!r} ({op}): {e}") from None
            ids[node.output] = out
            if op in ("conv", "dense"):
                self._weight_shapes_pending.append((tuple(np.shape(node.weights["w"])), "b" in node.weights))
                if owned:  # the engine holds them now (packed); the graph is ours to thin
                    node.weights = {}
        for o in g.outputs:
            if o not in ids:
                raise ValueError(f"graph: output {o!r} is not produced by any node")
        self._net = net
        self._ids = ids
        # The engine holds the (packed) convolution and dense weights; the graph kept here
        # holds none of them, so a prepared network costs one copy of its weights. `graph`,
        # save and pickling get them back from the engine (the packing undone, exactly).
        inputs = len(g.inputs)
        light = []
        self._weight_shapes: Dict[int, Tuple[Tuple[int, ...], bool]] = {}
        pending = iter(self._weight_shapes_pending)
        for i, node in enumerate(g.nodes):
            if node.op in ("conv", "dense"):
                self._weight_shapes[inputs + i] = next(pending)
                node = dataclasses.replace(node, weights={})
            light.append(node)
        del self._weight_shapes_pending
        self._graph = dataclasses.replace(g, nodes=light)

    # -- properties -------------------------------------------------------------------------------

    @property
    def graph(self) -> Graph:
        """The graph of keensight operators this network runs (weights included: a copy
        made from the prepared network on each access)."""
        g = self._graph
        inputs = len(g.inputs)
        nodes = []
        for i, node in enumerate(g.nodes):
            spec = self._weight_shapes.get(inputs + i)
            if spec is not None:
                shape, has_bias = spec
                weights = {"w": self._net.node_weights(inputs + i).reshape(shape)}
                if has_bias:
                    weights["b"] = self._net.node_bias(inputs + i)
                node = dataclasses.replace(node, weights=weights)
            nodes.append(node)
        return dataclasses.replace(g, nodes=nodes)

    @property
    def input_name(self) -> str:
        """The (first) input's name."""
        return next(iter(self._graph.inputs))

    @property
    def input_names(self) -> List[str]:
        return list(self._graph.inputs)

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of one image of the (first) input."""
        return tuple(int(v) for v in next(iter(self._graph.inputs.values())))  # type: ignore[return-value]

    @property
    def output_names(self) -> List[str]:
        return list(self._graph.outputs)

    @property
    def tensor_names(self) -> List[str]:
        """Every tensor ``run(outputs=)`` can return without re-importing."""
        return list(self._ids)

    @property
    def threads(self) -> int:
        """Threads a run uses (0: the package default, :func:`keensight.get_num_threads`)."""
        return self._threads

    @threads.setter
    def threads(self, value: Optional[int]) -> None:
        self._threads = _threads(value)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the prepared (packed) weights."""
        return int(self._net.weight_bytes)

    @property
    def arena_bytes(self) -> int:
        """Bytes of one image's activation arena (the buffer plan)."""
        return int(self._net.arena_bytes)

    # -- running ----------------------------------------------------------------------------------

    def _tensor_shape(self, name: str) -> Tuple[int, ...]:
        shape = self._graph.shapes.get(name)
        if shape is not None:
            return tuple(int(v) for v in shape)
        c, h, w = self._net.shape(self._ids[name])
        return (c, h, w)

    def run(self, x: Any, outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """Run a batch: ``x`` (N, C, H, W) float32 -> {name: array with the batch axis first}.

        ``outputs`` names the tensors to return (default: the graph's outputs); any
        tensor of the imported graph may be named, intermediate ones included (one
        pass, many outputs).
        """
        arrays_in = self._input_arrays(x)
        names = list(self._graph.outputs) if outputs is None else self._output_list(outputs)
        missing = [n for n in names if n not in self._ids]
        if missing:
            return self._with_kept(missing, names).run(x, names)
        unique = list(dict.fromkeys(names))
        arrays = self._net.run(arrays_in, [self._ids[n] for n in unique], self._threads)
        result = {}
        for n, a in zip(unique, arrays):
            result[n] = a.reshape((a.shape[0],) + self._tensor_shape(n))
        return result

    __call__ = run

    def _input_arrays(self, x: Any) -> List[np.ndarray]:
        """`x` (one array, or a dict name -> array for several inputs) as the engine's
        float32 NCHW arrays in input order, checked."""
        if isinstance(x, dict):
            unknown = [k for k in x if k not in self._graph.inputs]
            if unknown:
                raise ValueError(f"x: no input named {unknown[0]!r}; the inputs are {self.input_names}")
            missing_in = [k for k in self._graph.inputs if k not in x]
            if missing_in:
                raise ValueError(f"x: input {missing_in[0]!r} is missing")
            arrays = [_input_array(x[k], f"x[{k!r}]", self._graph.inputs[k]) for k in self._graph.inputs]
        else:
            if len(self._graph.inputs) != 1:
                raise TypeError(f"x: this network has {len(self._graph.inputs)} inputs; pass a dict name -> array")
            arrays = [_input_array(x, "x", self.input_shape)]
        if len({a.shape[0] for a in arrays}) != 1:
            raise ValueError("x: every input must have the same batch size")
        return arrays

    def profile(self, x: Any, repeats: int = 10) -> List[Dict[str, Any]]:
        """Time each node: runs `x` `repeats` times (images one by one, the threads
        inside each operator) and returns one dict per node, in execution order:
        ``{"node", "op", "kernel", "output", "ms"}`` (ms per image, the median over repeats),
        ``kernel`` naming the engine's implementation (conv_pointwise, conv_depthwise, ...).
        """
        repeats = _validate.positive_int(repeats, "repeats", high=100000)
        arrays = self._input_arrays(x)
        n = arrays[0].shape[0]
        runs = np.array([self._net.profile(arrays, self._threads) for _ in range(repeats)])
        ms = np.median(runs, axis=0) * 1e3 / n
        inputs = len(self._graph.inputs)
        rows = []
        for i in range(inputs, self._net.node_count):
            node = self._graph.nodes[i - inputs]
            rows.append({"node": node.name or node.output, "op": node.op, "kernel": self._net.node_kind(i),
                         "output": node.output, "ms": float(ms[i])})
        return rows

    @staticmethod
    def _output_list(outputs: Any) -> List[str]:
        if isinstance(outputs, str):
            outputs = [outputs]
        names = list(outputs)
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"outputs: expected tensor names (str), got {type(n).__name__}")
        if not names:
            raise ValueError("outputs: expected at least one tensor name")
        return names

    def _with_kept(self, missing: List[str], names: List[str]) -> "Network":
        """This network re-imported from its ONNX source with `names` kept from fusion."""
        if self._source is None:
            raise KeyError(f"outputs: no tensor named {missing[0]!r} in this network (it has "
                           f"{len(self._ids)} tensors; see tensor_names)")
        key = tuple(sorted(set(names)))
        with self._lock:
            net = self._rebuilt.get(key)
        if net is None:
            model, shape = self._source
            try:
                net = Network.from_onnx(model, input_shape=shape, threads=self._threads, keep=list(key))
            except ValueError as e:
                if str(e).startswith("keep:"):
                    raise KeyError(f"outputs: no tensor named {missing[0]!r} in this network or its ONNX graph "
                                   f"({e})") from None
                raise
            bad = [n for n in names if n not in net._ids]
            if bad:
                raise KeyError(f"outputs: no tensor named {bad[0]!r} in the ONNX graph")
            with self._lock:
                self._rebuilt[key] = net
        net.threads = self._threads
        return net

    # -- persistence ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The network in keensight's versioned, checksummed container (loads without onnx)."""
        return _core._container_write(None, _MAGIC, _FORMAT_VERSION, _graph_payload(self.graph))

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview], *, threads: Optional[int] = None) -> "Network":
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        _, payload = _core._container_read(bytes(data), _MAGIC, "keensight network", _FORMAT_VERSION)
        return cls(_graph_from_payload(payload), threads=threads)

    def save(self, path: PathLike) -> None:
        """Write the network to `path` atomically (no symlink followed; checksummed)."""
        path = _validate.output_file(path, "path")
        _core._container_write(path, _MAGIC, _FORMAT_VERSION, _graph_payload(self.graph))

    @classmethod
    def load(cls, path: PathLike, *, threads: Optional[int] = None) -> "Network":
        """Read a network written by :meth:`save` (format and checksum verified)."""
        path = _validate.input_file(path, "path")
        _, payload = _core._container_read(path, _MAGIC, "keensight network", _FORMAT_VERSION)
        return cls(_graph_from_payload(payload), threads=threads)

    def __reduce__(self) -> Any:
        return (_network_from_bytes, (self.to_bytes(), self._threads))

    def __repr__(self) -> str:
        return (f"Network(input={self.input_name!r} {self.input_shape}, {len(self._graph.nodes)} nodes, "
                f"outputs={self.output_names})")


def _release_freed_memory() -> None:
    """Return the importer's freed heap to the OS (glibc keeps large freed blocks in the
    heap once its mmap threshold has grown): a prepared network's resident memory is then
    its weights and arenas, not the ONNX parse that preceded it. A no-op elsewhere."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _input_array(x: Any, name: str, shape: Sequence[int]) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.float32:
        arr = x
    else:
        arr = np.asarray(x)
        if arr.dtype == object or arr.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected a real (float32) array, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
    if arr.ndim != 4:
        raise ValueError(f"{name}: expected an (N, C, H, W) array, got {arr.ndim} dimensions {arr.shape}")
    if tuple(arr.shape[1:]) != tuple(int(v) for v in shape):
        raise ValueError(f"{name}: expected images of shape {tuple(shape)} (C, H, W), got {arr.shape[1:]}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image (N >= 1)")
    return np.ascontiguousarray(arr)


def _network_from_bytes(data: bytes, threads: int) -> Network:
    return Network.from_bytes(data, threads=threads or None)


# -- the payload: a JSON header, then the weights as little-endian float32 ----------------------

def _json_value(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    return v


def _from_json_value(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"float"}:
        return float(v["float"])
    if isinstance(v, list):
        return tuple(_from_json_value(x) for x in v)
    return v


def _graph_payload(g: Graph) -> bytes:
    blobs: List[bytes] = []
    offset = 0
    nodes = []
    for n in g.nodes:
        weights = {}
        for key, w in n.weights.items():
            a = np.ascontiguousarray(w, dtype="<f4")
            weights[key] = [offset, list(a.shape)]
            blobs.append(a.tobytes())
            offset += a.nbytes
        nodes.append({"op": n.op, "inputs": list(n.inputs), "output": n.output, "name": n.name,
                      "attrs": {k: _json_value(v) for k, v in n.attrs.items()}, "weights": weights})
    header = {"inputs": [[k, list(v)] for k, v in g.inputs.items()], "outputs": list(g.outputs),
              "shapes": [[k, list(v)] for k, v in g.shapes.items()], "nodes": nodes, "weight_bytes": offset}
    head = json.dumps(header, allow_nan=False).encode("utf-8")
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def _graph_from_payload(payload: bytes) -> Graph:
    what = "keensight network"
    try:
        if len(payload) < 8:
            raise ValueError("truncated header")
        (n_head,) = struct.unpack_from("<Q", payload, 0)
        if n_head > len(payload) - 8:
            raise ValueError("header longer than the payload")
        header = json.loads(payload[8:8 + n_head].decode("utf-8"))
        data = memoryview(payload)[8 + n_head:]
        if int(header["weight_bytes"]) != len(data):
            raise ValueError("weights size does not match the header")
        nodes = []
        for n in header["nodes"]:
            weights = {}
            for key, (off, shape) in n["weights"].items():
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                off = int(off)
                if off < 0 or count < 0 or off + 4 * count > len(data):
                    raise ValueError(f"weight {key!r} of node {n['output']!r} lies outside the payload")
                weights[key] = np.frombuffer(data, dtype="<f4", count=count, offset=off).astype(
                    np.float32).reshape(shape)
            attrs = {k: _from_json_value(v) for k, v in n["attrs"].items()}
            if isinstance(attrs.get("activation"), tuple):
                attrs["activation"] = tuple(attrs["activation"])
            nodes.append(Node(op=str(n["op"]), inputs=[str(t) for t in n["inputs"]], output=str(n["output"]),
                              attrs=attrs, weights=weights, name=str(n.get("name", ""))))
        return Graph(inputs={str(k): tuple(int(x) for x in v) for k, v in header["inputs"]}, nodes=nodes,
                     outputs=[str(o) for o in header["outputs"]],
                     shapes={str(k): tuple(int(x) for x in v) for k, v in header["shapes"]})
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, struct.error) as e:
        raise ValueError(f"{what}: corrupt payload ({e})") from None
