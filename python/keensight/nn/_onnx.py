"""Lower an ONNX model to a keensight :class:`~keensight.nn._graph.Graph`.

The importer walks the ONNX nodes in order and gives every tensor one of three forms:

* a **constant** (a NumPy array): initializers, ``Constant`` nodes and every node whose
  inputs are all constant, evaluated here in NumPy (constant folding);
* a **shape value with a symbolic batch** (``_Sym``): the integer vectors exporters
  compute from ``Shape`` of a feature map, where the batch entry stays unknown until run
  time (``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``); the batch entry is
  carried as a mask through Gather / Slice / Concat / Cast / Unsqueeze / Squeeze and is
  resolved by the ``Reshape`` that consumes it;
* a **computed tensor** of the graph: one image's shape is known (batch axis removed)
  and the node that makes it is a keensight operator.

Then the operator list is rewritten until nothing changes (each rule keeps every tensor
of ``keep`` and every graph output; a tensor is fused away only when one operator reads
it):

* an activation after conv / dense / add / mul / channel_affine becomes that operator's
  ``activation`` (the engine's epilogue);
* a per-channel affine after a conv or dense (``Mul``/``Add``/``Sub``/``Div`` by
  constants, a batch norm the exporter did not put right after the conv) is folded into
  its weights; two affines in a row are merged;
* ``c * clip(a x + b, lo, hi) + d`` with uniform ``c > 0`` is rewritten as one clipped
  affine, so ``Clip(x + 3, 0, 6) / 6`` and ``Relu6(x + 3) * (1/6)`` become
  ``hardsigmoid(1/6, 1/2)``, and a uniform clipped affine with bounds (0, 1) is a
  hardsigmoid;
* ``x * hardsigmoid(x)`` is ``hardswish`` and ``x * sigmoid(x)`` is ``swish``; the
  trailing ``/ 6`` of ``x * Clip(x + 3, 0, 6) / 6`` is moved into the clip first;
* ``Add(conv_out, other)`` where the conv has no activation becomes the conv's residual
  input (added before its activation).

Lowered ONNX operators: Conv (2-D, any group, pads / auto_pad, strides, dilations),
BatchNormalization (folded into the Conv / Gemm / MatMul before it with
:func:`keensight.nn.fold_batch_norm`, else a channel_affine), Relu, Clip, HardSwish,
HardSigmoid, Sigmoid, Add / Sub / Mul / Div (a scalar or per-channel constant:
channel_affine; two tensors of equal shape or one (N, C, 1, 1): add / mul), MaxPool,
AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean over H, W, Flatten and the
Reshape / Squeeze that flatten (N, C, H, W) to (N, K), Gemm (transA=0), MatMul by a
constant matrix, Concat on channels, Softmax over a vector, a zero Pad before a Conv
(merged into its padding), Identity / Dropout / Cast-to-float (aliases).

Tensors that fusion removes (a conv's output before its batch norm, the inside of an
activation chain) and the outputs of Identity / Dropout (aliases of their input) cannot
be asked for by name unless they are listed in ``keep``; every other ONNX tensor name of
a computed tensor survives under its own name. A graph output or kept tensor that is an
alias becomes an ``activation`` node with activation None (a copy) when it cannot take
over its producer's output. Rewritten tensors whose value changed, and the extra tensors
of two-node lowerings, get internal names containing ``#``.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _graph
from ._graph import Graph, Node, activation_tuple

__all__ = ["UnsupportedOperatorError", "graph_from_onnx"]

# keensight.nn.UnsupportedOperatorError is the graph module's class where it defines one;
# this one derives from it so an `except` on either catches the importer's errors.
_UnsupportedBase = getattr(_graph, "UnsupportedOperatorError", ValueError)


class UnsupportedOperatorError(_UnsupportedBase):  # type: ignore[misc, valid-type]
    """An ONNX operator keensight's engine does not run. The message names its type, the
    node's name and its index; so do the attributes ``op_type``, ``node_name``, ``index``."""

    def __init__(self, message: str, op_type: str = "", node_name: str = "", index: int = -1):
        super().__init__(message)
        self.op_type = op_type
        self.node_name = node_name
        self.index = index


_INF = math.inf
# Ops whose output is computed from constants here when all their inputs are constant.
_FOLDABLE = {"Constant", "Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice",
             "Reshape", "Add", "Sub", "Mul", "Div", "ConstantOfShape", "Range", "Shape",
             "Transpose", "Flatten", "Neg", "Sqrt", "Pow", "Min", "Max", "Floor", "Ceil",
             "Expand", "Equal", "Where", "Abs", "Reciprocal", "Size", "Dropout"}
# Ops that only move entries around: applied to a symbolic shape value entry by entry.
_STRUCTURAL = {"Identity", "Cast", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice",
               "Reshape", "Expand", "Flatten"}
_FUSABLE_PRODUCERS = ("conv", "dense", "add", "mul", "channel_affine", "activation")


class _Sym:
    """An integer shape value whose entries marked in ``batch`` equal the batch size."""

    def __init__(self, values: np.ndarray, batch: np.ndarray):
        self.values = np.asarray(values, dtype=np.int64)
        self.batch = np.asarray(batch, dtype=bool)


def _describe(node, index: int) -> str:
    name = node.name or "<unnamed>"
    return f"{node.op_type} node {name!r} (node {index})"


def _attributes(node) -> Dict[str, Any]:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        out[a.name] = v
    return out


def _load(path_or_model):
    import onnx
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    elif isinstance(path_or_model, (str, os.PathLike)):
        if not os.path.isfile(path_or_model):
            raise ValueError(f"path_or_model: no such file {os.fspath(path_or_model)!r}")
        try:
            model = onnx.load(os.fspath(path_or_model))
        except Exception as e:  # protobuf's DecodeError and friends
            raise ValueError(f"path_or_model: {os.fspath(path_or_model)!r} is not an ONNX model: {e}") from e
    else:
        raise TypeError("path_or_model: expected a path (str or os.PathLike) or an onnx.ModelProto, "
                        f"got {type(path_or_model).__name__}")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise ValueError(f"path_or_model: the ONNX checker rejects the model: {e}") from e
    return model


def _np_dtype(onnx_type: int):
    from onnx import helper
    return helper.tensor_dtype_to_np_dtype(onnx_type)


def _fold(op: str, ins: List[Optional[np.ndarray]], at: Dict[str, Any], opset: int,
          node, index: int) -> List[np.ndarray]:
    """Evaluate one ONNX node on constant inputs (NumPy)."""
    from onnx import numpy_helper
    x = ins[0] if ins else None
    if op == "Constant":
        if "value" in at:
            return [numpy_helper.to_array(at["value"])]
        for key, dt in (("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
            if key in at:
                return [np.array(at[key], dtype=dt)]
        raise ValueError(f"{_describe(node, index)}: unsupported Constant attribute {sorted(at)}")
    if op in ("Identity", "Dropout"):
        return [x]
    if op == "Cast":
        return [x.astype(_np_dtype(at["to"]))]
    if op == "Gather":
        return [np.take(x, ins[1].astype(np.int64), axis=at.get("axis", 0))]
    if op in ("Unsqueeze", "Squeeze"):
        axes = at.get("axes") if opset < 13 else (None if len(ins) < 2 or ins[1] is None
                                                   else ins[1].tolist())
        if op == "Unsqueeze":
            rank = x.ndim + len(axes)
            out = x
            for a in sorted(int(a) % rank for a in axes):
                out = np.expand_dims(out, a)
            return [out]
        if axes is None:
            return [np.squeeze(x)]
        return [np.squeeze(x, axis=tuple(int(a) % x.ndim for a in axes))]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(i) for i in ins if i is not None], axis=at["axis"])]
    if op == "Slice":
        if opset < 10:
            starts, ends = at["starts"], at["ends"]
            axes = at.get("axes", list(range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts, ends = ins[1].tolist(), ins[2].tolist()
            axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
            steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        index_tuple = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            # Python's slicing clamps out-of-range bounds as ONNX does (INT64_MAX: to the end,
            # INT64_MIN with a negative step: past the front), as onnx's reference evaluator
            index_tuple[int(a)] = slice(int(s), int(e), int(st))
        return [x[tuple(index_tuple)]]
    if op == "Reshape":
        shape = ins[1].astype(np.int64).tolist()
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Flatten":
        axis = at.get("axis", 1) % max(x.ndim, 1) if x.ndim else 0
        return [x.reshape(int(np.prod(x.shape[:axis])), -1)]
    if op in ("Add", "Sub", "Mul", "Div", "Pow", "Equal"):
        a, b = ins
        if op == "Div" and a.dtype.kind in "iu":
            q = np.trunc(a.astype(np.float64) / b.astype(np.float64))  # ONNX truncates
            return [q.astype(np.result_type(a, b))]
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
              "Pow": np.power, "Equal": np.equal}[op]
        out = fn(a, b)
        return [out if op == "Equal" else out.astype(a.dtype)]
    if op in ("Neg", "Sqrt", "Floor", "Ceil", "Abs", "Reciprocal"):
        fn = {"Neg": np.negative, "Sqrt": np.sqrt, "Floor": np.floor, "Ceil": np.ceil, "Abs": np.abs,
              "Reciprocal": np.reciprocal}[op]
        return [fn(x).astype(x.dtype)]
    if op in ("Min", "Max"):
        fn = np.minimum if op == "Min" else np.maximum
        out = ins[0]
        for i in ins[1:]:
            out = fn(out, i)
        return [out]
    if op == "Where":
        return [np.where(ins[0], ins[1], ins[2])]
    if op == "Expand":
        return [x * np.ones(ins[1].astype(np.int64).tolist(), dtype=x.dtype)]
    if op == "ConstantOfShape":
        value = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
        return [np.full(x.astype(np.int64).tolist(), value.reshape(-1)[0], dtype=value.dtype)]
    if op == "Range":
        start, limit, delta = (i.reshape(()) for i in ins)
        return [np.arange(start, limit, delta).astype(start.dtype)]
    if op == "Shape":
        shape = np.array(x.shape, dtype=np.int64)
        return [shape[at.get("start", 0):at.get("end", None)]]
    if op == "Size":
        return [np.array(x.size, dtype=np.int64)]
    if op == "Transpose":
        return [np.transpose(x, at.get("perm"))]
    raise AssertionError(op)


def _fold_with_reference(node, ins: List[Optional[np.ndarray]], opset: int) -> List[np.ndarray]:
    """Constant-fold an op this module does not evaluate itself, with onnx's reference
    evaluator (a one-node model)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    names = [f"in{i}" if i_ is not None else "" for i, i_ in enumerate(ins)]
    inits = [numpy_helper.from_array(a, n) for a, n in zip(ins, names) if a is not None]
    outs = [f"out{i}" for i in range(len(node.output))]
    one = helper.make_node(node.op_type, names, outs, domain=node.domain)
    one.attribute.extend(node.attribute)
    graph = helper.make_graph([one], "fold", [], [helper.make_value_info(o, helper.TypeProto()) for o in outs],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return list(ReferenceEvaluator(model).run(None, {}))


class _Importer:
    def __init__(self, model, input_shape, keep):
        self.model = model
        self.opset = 0
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        self.g = model.graph
        self.consts: Dict[str, np.ndarray] = {}
        self.syms: Dict[str, _Sym] = {}
        self.alias: Dict[str, str] = {}
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.nodes: List[Node] = []
        self.producer: Dict[str, Node] = {}
        self.internal = 0
        self.pending_pads: Dict[str, Tuple[str, Tuple[int, int, int, int]]] = {}
        self._read_initializers()
        self._read_input(input_shape)
        names = {self.input_name} | {o for n in self.g.node for o in n.output if o}
        self.keep = []
        for k in keep or ():
            if not isinstance(k, str):
                raise TypeError(f"keep: expected tensor names (str), got {type(k).__name__}")
            if k not in names:
                raise ValueError(f"keep: {k!r} is not a tensor of the ONNX graph")
            self.keep.append(k)
        self.output_names = [o.name for o in self.g.output]
        self.protected = set(self.output_names) | set(self.keep)
        self.onnx_uses: Dict[str, int] = {}
        for n in self.g.node:
            for i in n.input:
                self.onnx_uses[i] = self.onnx_uses.get(i, 0) + 1

    # ----------------------------------------------------------------- inputs
    def _read_initializers(self):
        from onnx import numpy_helper
        for t in self.g.initializer:
            self.consts[t.name] = numpy_helper.to_array(t)
        for t in self.g.sparse_initializer:
            raise ValueError(f"sparse initializer {t.values.name!r} is not supported")

    def _read_input(self, input_shape):
        from onnx import TensorProto
        inputs = [i for i in self.g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"expected one image input (N, C, H, W), the graph has {len(inputs)}: "
                             f"{[i.name for i in inputs]}")
        inp = inputs[0]
        self.input_name = inp.name
        tt = inp.type.tensor_type
        if tt.elem_type != TensorProto.FLOAT:
            raise ValueError(f"input {inp.name!r}: expected a float32 tensor, got ONNX element type {tt.elem_type}")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        if tt.HasField("shape") and len(dims) != 4:
            raise ValueError(f"input {inp.name!r}: expected an image batch (N, C, H, W), got rank {len(dims)}")
        if not tt.HasField("shape"):
            dims = [None] * 4
        if input_shape is not None:
            if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
                    or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in input_shape)):
                raise ValueError(f"input_shape: expected (C, H, W) as three positive ints, got {input_shape!r}")
            chw = tuple(int(v) for v in input_shape)
            if min(chw) < 1:
                raise ValueError(f"input_shape: expected positive sizes, got {input_shape!r}")
            for axis, (d, v) in enumerate(zip(dims[1:], chw)):
                if d is not None and d != v:
                    raise ValueError(f"input_shape: {chw} disagrees with the model's input {inp.name!r} of "
                                     f"shape {dims} on axis {axis + 1}")
        else:
            if any(d is None for d in dims[1:]):
                raise ValueError(f"input {inp.name!r} has dynamic sizes {['N' if d is None else d for d in dims]}; "
                                 "pass input_shape=(C, H, W)")
            chw = tuple(dims[1:])
        self.input_shape = chw
        self.batch_static = dims[0]
        self.shapes[inp.name] = chw

    # ---------------------------------------------------------------- helpers
    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def kind(self, name: str) -> str:
        if name == "":
            return "absent"
        if name in self.consts:
            return "const"
        if name in self.syms:
            return "sym"
        if self.resolve(name) in self.shapes:
            return "dyn"
        raise ValueError(f"tensor {name!r} is used before it is computed (the graph is not in topological order)")

    def emit(self, op, inputs, output, shape, attrs=None, weights=None, name=""):
        node = Node(op, list(inputs), output, dict(attrs or {}),
                    {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (weights or {}).items()}, name)
        self.nodes.append(node)
        self.producer[output] = node
        self.shapes[output] = tuple(int(s) for s in shape)
        return node

    def internal_name(self, base: str, what: str) -> str:
        self.internal += 1
        return f"{base}#{what}{self.internal}"

    # ------------------------------------------------------------------- run
    def run(self) -> Graph:
        for index, node in enumerate(self.g.node):
            self.visit(node, index)
        outputs = []
        for name in self.output_names:
            k = self.kind(name)
            if k != "dyn":
                raise ValueError(f"graph output {name!r} does not depend on the input (it is a constant)")
            if name == self.input_name:
                raise ValueError(f"graph output {name!r} is the graph's input")
            if self.resolve(name) != name:  # an alias of a graph output that another output owns
                self.copy(name, self.resolve(name))
            outputs.append(name)
        for k in self.keep:
            if self.kind(k) != "dyn":
                raise ValueError(f"keep: {k!r} is a constant of the graph, not a computed tensor")
            if self.resolve(k) != k:
                self.copy(k, self.resolve(k))
        _Fuser(self).run()
        self.dead_code(outputs)
        graph = Graph(inputs={self.input_name: self.input_shape}, nodes=self.nodes, outputs=outputs)
        graph.shapes = {n: self.shapes[n] for n in graph.tensor_names()}
        return graph

    def copy(self, out: str, src: str):
        self.emit("activation", [src], out, self.shapes[src], {"activation": None})

    def dead_code(self, outputs):
        live = set(outputs) | set(self.keep)
        kept = []
        for node in reversed(self.nodes):
            if node.output in live:
                kept.append(node)
                live.update(node.inputs)
        self.nodes = kept[::-1]

    def visit(self, node, index):
        op = node.op_type
        where = _describe(node, index)
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOperatorError(f"unsupported operator {node.domain}.{op} ({where})", op, node.name, index)
        kinds = [self.kind(i) for i in node.input]
        at = _attributes(node)
        present = [k for k in kinds if k != "absent"]
        if all(k == "const" for k in present) and op not in ("Shape",):
            ins = [None if k == "absent" else self.consts[i] for i, k in zip(node.input, kinds)]
            try:
                outs = (_fold(op, ins, at, self.opset, node, index) if op in _FOLDABLE
                        else _fold_with_reference(node, ins, self.opset))
            except (UnsupportedOperatorError, ValueError):
                raise
            except Exception as e:
                raise ValueError(f"{where}: cannot evaluate it on its constant inputs: {e}") from e
            for o, v in zip(node.output, outs):
                if o:
                    self.consts[o] = np.asarray(v)
            return
        if op == "Shape" and present == ["const"]:
            self.consts[node.output[0]] = _fold(op, [self.consts[node.input[0]]], at, self.opset, node, index)[0]
            return
        if "sym" in kinds or (op == "Shape"):
            return self.visit_shape_value(node, index, kinds, at)
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            raise UnsupportedOperatorError(f"unsupported operator {op} ({where})", op, node.name, index)
        handler(node, index, kinds, at)

    # ------------------------------------------------------- symbolic shapes
    def visit_shape_value(self, node, index, kinds, at):
        op, where = node.op_type, _describe(node, index)
        out = node.output[0]
        if op == "Shape":
            shape = (1,) + self.shapes[self.resolve(node.input[0])]
            batch = np.zeros(len(shape), bool)
            batch[0] = True
            values = np.array(shape, np.int64)
            sl = slice(at.get("start", 0), at.get("end", None))
            self.set_sym(out, values[sl], batch[sl])
            return
        if op == "Reshape" and kinds[0] == "dyn":
            return self.op_Reshape(node, index, kinds, at)
        if op in _STRUCTURAL:
            data_inputs = range(len(node.input)) if op == "Concat" else [0]
            if any(kinds[i] == "sym" for i in range(len(node.input)) if i not in data_inputs):
                raise ValueError(f"{where}: a parameter that depends on the batch size is not supported")
            vals, masks = [], []
            for i, (name, k) in enumerate(zip(node.input, kinds)):
                if k == "absent":
                    vals.append(None), masks.append(None)
                elif k == "sym":
                    vals.append(self.syms[name].values), masks.append(self.syms[name].batch.astype(np.int64))
                elif k == "const":
                    vals.append(self.consts[name])
                    masks.append(np.zeros(self.consts[name].shape, np.int64) if i in data_inputs else self.consts[name])
                else:
                    raise ValueError(f"{where}: mixes a shape value with a computed tensor")
            v = _fold(op, vals, at, self.opset, node, index)[0]
            m_at = dict(at)
            m_at.pop("to", None)
            m = _fold("Identity" if op == "Cast" else op, masks, m_at, self.opset, node, index)[0]
            self.set_sym(out, v, m.astype(bool))
            return
        if op in ("Add", "Sub", "Mul", "Div") and all(k in ("sym", "const") for k in kinds):
            a, b = (self.syms[n] if k == "sym" else _Sym(self.consts[n], np.zeros(np.shape(self.consts[n]), bool))
                    for n, k in zip(node.input, kinds))
            neutral = {"Add": 0, "Sub": 0, "Mul": 1, "Div": 1}[op]
            va, vb = np.broadcast_arrays(a.values, b.values)
            ma, mb = np.broadcast_arrays(a.batch, b.batch)
            # the batch entry survives arithmetic only with the neutral element
            ok = (~ma | (vb == neutral)) & ~mb if op in ("Sub", "Div") else \
                (~ma | (vb == neutral) & ~mb) & (~mb | (va == neutral) & ~ma)
            if not ok.all():
                raise ValueError(f"{where}: arithmetic on the batch size is not supported")
            vals = _fold(op, [a.values, b.values], at, self.opset, node, index)[0]
            vals = np.where(ma, a.values, np.where(mb, b.values, vals))
            self.set_sym(out, vals, ma | mb)
            return
        raise ValueError(f"{where}: depends on the batch size, which keensight keeps symbolic "
                         "(only Shape -> Gather/Slice/Concat/Cast/Unsqueeze -> Reshape is supported)")

    def set_sym(self, name, values, batch):
        batch = np.asarray(batch, bool)
        if not batch.any():
            self.consts[name] = np.asarray(values)
        else:
            self.syms[name] = _Sym(values, batch)

    # -------------------------------------------------------------- lowering
    def data_input(self, node, index, i=0, what="input") -> str:
        name = node.input[i] if i < len(node.input) else ""
        k = self.kind(name)
        if k != "dyn":
            raise ValueError(f"{_describe(node, index)}: expected its {what} to be computed from the image input, "
                             f"got a {k} tensor")
        name = self.resolve(name)
        if name in self.pending_pads:
            raise ValueError(f"{_describe(node, index)}: reads {name!r}, the output of a Pad; a zero Pad is "
                             "supported only before a Conv (it becomes the Conv's padding)")
        return name

    def padded_input(self, node, index) -> Tuple[str, Tuple[int, int, int, int]]:
        """The input of a Conv and the zero padding of a Pad node before it (top, left, bottom, right)."""
        name = self.resolve(node.input[0]) if self.kind(node.input[0]) == "dyn" else None
        if name in self.pending_pads:
            return self.pending_pads[name]
        return self.data_input(node, index), (0, 0, 0, 0)

    def op_Pad(self, node, index, kinds, at):
        where = _describe(node, index)
        x = self.data_input(node, index)
        shape = self.feature_map(node, index, x)
        mode = at.get("mode", "constant")
        if self.opset < 11:
            pads, value = list(at.get("pads", ())), float(at.get("value", 0.0))
        else:
            pads = self.const_input(node, index, 1, "pads").astype(np.int64).tolist()
            v = self.const_input(node, index, 2, "constant_value", optional=True)
            value = 0.0 if v is None else float(np.asarray(v).reshape(-1)[0])
            axes = self.const_input(node, index, 3, "axes", optional=True)
            if axes is not None:  # opset 18: pads for the listed axes only
                full = [0] * 8
                for j, a in enumerate(int(a) % 4 for a in axes.tolist()):
                    full[a], full[a + 4] = pads[j], pads[j + len(axes)]
                pads = full
        if mode != "constant" or value != 0.0:
            raise ValueError(f"{where}: Pad mode {mode!r} with value {value}; only zero padding is supported")
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise ValueError(f"{where}: pads {pads}; only non-negative padding of H and W is supported")
        out = node.output[0]
        if out in self.protected:
            raise ValueError(f"{where}: its output {out!r} cannot be returned (a Pad becomes the next Conv's padding)")
        self.pending_pads[out] = (x, (pads[2], pads[3], pads[6], pads[7]))
        self.shapes[out] = (shape[0], shape[1] + pads[2] + pads[6], shape[2] + pads[3] + pads[7])

    def const_input(self, node, index, i, what, optional=False) -> Optional[np.ndarray]:
        name = node.input[i] if i < len(node.input) else ""
        k = self.kind(name)
        if k == "absent" and optional:
            return None
        if k != "const":
            raise ValueError(f"{_describe(node, index)}: its {what} must be a constant (initializer or Constant), "
                             f"got a {k} tensor")
        return self.consts[name]

    def check_single_output(self, node, index):
        for extra in node.output[1:]:
            if extra and (extra in self.onnx_uses or extra in self.protected):
                raise ValueError(f"{_describe(node, index)}: its output {extra!r} (training or index output) "
                                 "is used; keensight computes only the first output")

    def feature_map(self, node, index, name) -> Tuple[int, int, int]:
        shape = self.shapes[name]
        if len(shape) != 3:
            raise ValueError(f"{_describe(node, index)}: expected a feature map (N, C, H, W) input, got one image "
                             f"of shape {shape}")
        return shape

    def make_alias(self, out, src):
        if out in self.protected:
            self.copy(out, src)
        else:
            self.alias[out] = src

    def op_Identity(self, node, index, kinds, at):
        self.make_alias(node.output[0], self.data_input(node, index))

    def op_Dropout(self, node, index, kinds, at):
        if len(node.input) > 2 and kinds[2] != "absent":
            mode = self.const_input(node, index, 2, "training_mode")
            if bool(np.asarray(mode).reshape(-1)[0]):
                raise ValueError(f"{_describe(node, index)}: training_mode=True is not supported (inference only)")
        self.check_single_output(node, index)
        self.make_alias(node.output[0], self.data_input(node, index))

    def op_Cast(self, node, index, kinds, at):
        from onnx import TensorProto
        if at.get("to") != TensorProto.FLOAT:
            raise ValueError(f"{_describe(node, index)}: casts a computed tensor to ONNX type {at.get('to')}; "
                             "only float32 is supported")
        self.make_alias(node.output[0], self.data_input(node, index))

    def spatial(self, node, index, at, kernel, in_hw):
        where = _describe(node, index)
        strides = tuple(at.get("strides", (1, 1)))
        dilations = tuple(at.get("dilations", (1, 1)))
        if len(strides) != 2 or len(dilations) != 2 or min(strides) < 1 or min(dilations) < 1:
            raise ValueError(f"{where}: expected 2 positive strides and dilations, got {strides}, {dilations}")
        auto_pad = at.get("auto_pad", "NOTSET")
        if auto_pad in ("NOTSET", ""):
            pads = tuple(at.get("pads", (0, 0, 0, 0)))
            if len(pads) != 4 or min(pads) < 0:
                raise ValueError(f"{where}: expected 4 non-negative pads, got {pads}")
        elif auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            before, after = [], []
            for size, k, s, d in zip(in_hw, kernel, strides, dilations):
                out = -(-size // s)
                total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
                small, big = total // 2, total - total // 2
                before.append(small if auto_pad == "SAME_UPPER" else big)
                after.append(big if auto_pad == "SAME_UPPER" else small)
            pads = (before[0], before[1], after[0], after[1])
        else:
            raise ValueError(f"{where}: unknown auto_pad {auto_pad!r}")
        return strides, tuple(int(p) for p in pads), dilations

    @staticmethod
    def out_size(size, k, s, d, pb, pe, ceil_mode=False):
        span = size + pb + pe - ((k - 1) * d + 1)
        if span < 0:
            return 0
        if not ceil_mode:
            return span // s + 1
        out = -(-span // s) + 1
        if (out - 1) * s >= size + pb:  # the last window would start in the end padding
            out -= 1
        return out

    def op_Conv(self, node, index, kinds, at):
        where = _describe(node, index)
        x, pre = self.padded_input(node, index)
        c, h, w_ = self.feature_map(node, index, x)
        w = self.const_input(node, index, 1, "weight W")
        if w.ndim != 4:
            raise ValueError(f"{where}: only 2-D convolutions are supported, the weight has shape {w.shape}")
        b = self.const_input(node, index, 2, "bias B", optional=True)
        groups = int(at.get("group", 1))
        o = w.shape[0]
        if groups < 1 or c % groups or o % groups or w.shape[1] * groups != c:
            raise ValueError(f"{where}: weight {w.shape} with group={groups} does not fit {c} input channels")
        kernel = tuple(w.shape[2:])
        if "kernel_shape" in at and tuple(at["kernel_shape"]) != kernel:
            raise ValueError(f"{where}: kernel_shape {at['kernel_shape']} disagrees with the weight {w.shape}")
        if b is not None and b.shape != (o,):
            raise ValueError(f"{where}: bias of shape {b.shape}, expected ({o},)")
        if pre != (0, 0, 0, 0) and at.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
            raise ValueError(f"{where}: a Pad before a Conv with auto_pad={at['auto_pad']} is not supported")
        strides, pads, dil = self.spatial(node, index, at, kernel, (h + pre[0] + pre[2], w_ + pre[1] + pre[3]))
        pads = tuple(p + q for p, q in zip(pads, pre))
        oh = self.out_size(h, kernel[0], strides[0], dil[0], pads[0], pads[2])
        ow = self.out_size(w_, kernel[1], strides[1], dil[1], pads[1], pads[3])
        if oh < 1 or ow < 1:
            raise ValueError(f"{where}: the kernel {kernel} (dilation {dil}) is larger than the padded input "
                             f"{h + pads[0] + pads[2]}x{w_ + pads[1] + pads[3]}")
        weights = {"w": w}
        if b is not None:
            weights["b"] = b
        self.emit("conv", [x], node.output[0], (o, oh, ow),
                  {"stride": strides, "pads": pads, "dilation": dil, "groups": groups, "activation": None},
                  weights, node.name)

    def op_BatchNormalization(self, node, index, kinds, at):
        from . import fold_batch_norm
        where = _describe(node, index)
        if at.get("training_mode", 0):
            raise ValueError(f"{where}: training_mode=1 is not supported (inference only)")
        if not at.get("spatial", 1):
            raise ValueError(f"{where}: spatial=0 is not supported")
        self.check_single_output(node, index)
        x = self.data_input(node, index)
        c = self.shapes[x][0]
        params = [self.const_input(node, index, i, what) for i, what in
                  ((1, "scale"), (2, "B"), (3, "mean"), (4, "var"))]
        for p, what in zip(params, ("scale", "B", "mean", "var")):
            if p.shape != (c,):
                raise ValueError(f"{where}: {what} of shape {p.shape}, expected ({c},)")
        eps = float(at.get("epsilon", 1e-5))
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        out = node.output[0]
        prod = self.producer.get(x)
        try:
            if (prod is not None and prod.op in ("conv", "dense") and prod.attrs["activation"] is None
                    and len(prod.inputs) == 1 and x == node.input[0] and self.onnx_uses.get(x, 0) == 1
                    and x not in self.protected):
                wf, bf = fold_batch_norm(prod.weights["w"], prod.weights.get("b"), gamma, beta, mean, var, eps)
                prod.weights["w"], prod.weights["b"] = wf, bf
                self.rename_output(prod, out)
                return
            if (var + eps <= 0).any() or (var < 0).any():
                raise ValueError("var: variances must be >= 0 and var + eps > 0")
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        scale = gamma / np.sqrt(var + eps)
        self.emit("channel_affine", [x], out, self.shapes[x], {"activation": None},
                  {"scale": scale, "shift": beta - mean * scale}, node.name)

    def rename_output(self, prod: Node, new: str):
        old = prod.output
        del self.producer[old]
        shape = self.shapes.pop(old)
        prod.output = new
        self.producer[new] = prod
        self.shapes[new] = shape

    def activation(self, node, index, act):
        x = self.data_input(node, index)
        self.emit("activation", [x], node.output[0], self.shapes[x], {"activation": act}, name=node.name)

    def op_Relu(self, node, index, kinds, at):
        self.activation(node, index, activation_tuple("relu"))

    def op_Sigmoid(self, node, index, kinds, at):
        self.activation(node, index, activation_tuple("sigmoid"))

    def op_HardSwish(self, node, index, kinds, at):
        self.activation(node, index, activation_tuple("hardswish"))

    def op_HardSigmoid(self, node, index, kinds, at):
        self.activation(node, index, activation_tuple(("hardsigmoid", float(at.get("alpha", 0.2)),
                                                       float(at.get("beta", 0.5)))))

    def op_Clip(self, node, index, kinds, at):
        where = _describe(node, index)
        if self.opset < 11:
            lo, hi = float(at.get("min", -_INF)), float(at.get("max", _INF))
        else:
            bounds = []
            for i, what in ((1, "min"), (2, "max")):
                v = self.const_input(node, index, i, what, optional=True)
                if v is not None and v.size != 1:
                    raise ValueError(f"{where}: {what} must be a scalar, got shape {v.shape}")
                bounds.append(None if v is None else float(v.reshape(-1)[0]))
            lo = -_INF if bounds[0] is None else bounds[0]
            hi = _INF if bounds[1] is None else bounds[1]
        # float's numeric limits (the attribute defaults of opset < 11) mean "unbounded"
        lo = -_INF if lo <= -3.4e38 else lo
        hi = _INF if hi >= 3.4e38 else hi
        try:
            act = activation_tuple(("clip", lo, hi))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        self.activation(node, index, act)

    def channel_vector(self, node, index, const, shape) -> Optional[np.ndarray]:
        """A constant operand as a per-channel vector (C,) if it broadcasts as one."""
        full_rank = len(shape) + 1
        if const.ndim > full_rank:
            return None
        cs = (1,) * (full_rank - const.ndim) + const.shape
        if cs[0] != 1 or any(d != 1 for d in cs[2:]) or cs[1] not in (1, shape[0]):
            return None
        return np.broadcast_to(const.reshape(-1).astype(np.float64), (shape[0],))

    def binary(self, node, index, kinds, at):
        op, where = node.op_type, _describe(node, index)
        out = node.output[0]
        if "const" in kinds:
            ci = kinds.index("const")
            xi = 1 - ci
            x = self.data_input(node, index, xi)
            vec = self.channel_vector(node, index, self.consts[node.input[ci]], self.shapes[x])
            if vec is None:
                raise ValueError(f"{where}: {op} with a constant of shape {self.consts[node.input[ci]].shape} "
                                 f"on a tensor of shape (N, {', '.join(map(str, self.shapes[x]))}); only a scalar "
                                 "or per-channel constant is supported")
            scale = shift = None
            if op == "Add":
                shift = vec
            elif op == "Mul":
                scale = vec
            elif op == "Sub":
                scale, shift = (None, -vec) if ci == 1 else (-np.ones_like(vec), vec)
            else:
                if ci == 0:
                    raise ValueError(f"{where}: a constant divided by a computed tensor is not supported")
                if (vec == 0).any():
                    raise ValueError(f"{where}: division by a constant containing zero")
                scale = 1.0 / vec
            weights = {}
            if scale is not None:
                weights["scale"] = scale
            if shift is not None:
                weights["shift"] = shift
            self.emit("channel_affine", [x], out, self.shapes[x], {"activation": None}, weights, node.name)
            return
        a, b = self.data_input(node, index, 0), self.data_input(node, index, 1)
        if op == "Div":
            raise ValueError(f"{where}: Div of two computed tensors is not supported")
        sa, sb = self.shapes[a], self.shapes[b]
        if op == "Sub":  # a - b = a + (-1) * b
            neg = self.internal_name(b, "neg")
            self.emit("channel_affine", [b], neg, sb, {"activation": None},
                      {"scale": -np.ones(sb[0])}, node.name)
            b = neg
        if sa != sb:
            if len(sa) == 3 and len(sb) == 3 and sa[0] == sb[0] and sa[1:] == (1, 1):
                a, b, sa, sb = b, a, sb, sa
            if not (len(sa) == 3 and len(sb) == 3 and sa[0] == sb[0] and sb[1:] == (1, 1)):
                raise ValueError(f"{where}: operands of shapes (N, {sa}) and (N, {sb}); supported are equal shapes "
                                 "and a (N, C, 1, 1) operand broadcast over H x W")
        self.emit("add" if op in ("Add", "Sub") else "mul", [a, b], out, sa, {"activation": None}, name=node.name)

    op_Add = op_Sub = op_Mul = op_Div = binary

    def op_Gemm(self, node, index, kinds, at):
        where = _describe(node, index)
        if at.get("transA", 0):
            raise ValueError(f"{where}: transA=1 is not supported")
        x = self.data_input(node, index)
        if len(self.shapes[x]) != 1:
            raise ValueError(f"{where}: expected a (N, K) input, got (N, {self.shapes[x]})")
        k = self.shapes[x][0]
        bmat = self.const_input(node, index, 1, "B").astype(np.float64)
        if bmat.ndim != 2:
            raise ValueError(f"{where}: B must be 2-D, got shape {bmat.shape}")
        w = (bmat if at.get("transB", 0) else bmat.T) * float(at.get("alpha", 1.0))
        if w.shape[1] != k:
            raise ValueError(f"{where}: B of shape {bmat.shape} does not fit an input of {k} features")
        weights = {"w": w}
        c = self.const_input(node, index, 2, "C", optional=True)
        if c is not None:
            o = w.shape[0]
            if c.size not in (1, o) or (c.ndim == 2 and c.shape[0] != 1) or c.ndim > 2:
                raise ValueError(f"{where}: C of shape {c.shape}; expected a scalar, ({o},) or (1, {o})")
            weights["b"] = np.broadcast_to(c.reshape(-1).astype(np.float64), (o,)) * float(at.get("beta", 1.0))
        self.emit("dense", [x], node.output[0], (w.shape[0],), {"activation": None}, weights, node.name)

    def op_MatMul(self, node, index, kinds, at):
        where = _describe(node, index)
        x = self.data_input(node, index)
        bmat = self.const_input(node, index, 1, "weight (second input)")
        if len(self.shapes[x]) != 1 or bmat.ndim != 2 or bmat.shape[0] != self.shapes[x][0]:
            raise ValueError(f"{where}: supported is (N, K) @ constant (K, M); got (N, {self.shapes[x]}) @ "
                             f"{bmat.shape}")
        self.emit("dense", [x], node.output[0], (bmat.shape[1],), {"activation": None}, {"w": bmat.T}, node.name)

    def pool(self, node, index, at, op):
        where = _describe(node, index)
        x = self.data_input(node, index)
        c, h, w = self.feature_map(node, index, x)
        kernel = tuple(at.get("kernel_shape", ()))
        if len(kernel) != 2:
            raise ValueError(f"{where}: expected a 2-D kernel_shape, got {kernel}")
        strides, pads, dil = self.spatial(node, index, at, kernel, (h, w))
        ceil_mode = bool(at.get("ceil_mode", 0))
        if op == "avg_pool" and dil != (1, 1):
            raise ValueError(f"{where}: dilations {dil} are not supported in AveragePool")
        oh = self.out_size(h, kernel[0], strides[0], dil[0], pads[0], pads[2], ceil_mode)
        ow = self.out_size(w, kernel[1], strides[1], dil[1], pads[1], pads[3], ceil_mode)
        if oh < 1 or ow < 1:
            raise ValueError(f"{where}: the kernel {kernel} is larger than the padded input")
        attrs = {"kernel": kernel, "stride": strides, "pads": pads, "ceil_mode": ceil_mode}
        if op == "max_pool":
            attrs["dilation"] = dil
        else:
            attrs["count_include_pad"] = bool(at.get("count_include_pad", 0))
        self.check_single_output(node, index)
        self.emit(op, [x], node.output[0], (c, oh, ow), attrs, name=node.name)

    def op_MaxPool(self, node, index, kinds, at):
        self.pool(node, index, at, "max_pool")

    def op_AveragePool(self, node, index, kinds, at):
        self.pool(node, index, at, "avg_pool")

    def op_GlobalAveragePool(self, node, index, kinds, at):
        x = self.data_input(node, index)
        c = self.feature_map(node, index, x)[0]
        self.emit("global_avg_pool", [x], node.output[0], (c, 1, 1), name=node.name)

    def op_GlobalMaxPool(self, node, index, kinds, at):
        x = self.data_input(node, index)
        c, h, w = self.feature_map(node, index, x)
        self.emit("max_pool", [x], node.output[0], (c, 1, 1),
                  {"kernel": (h, w), "stride": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1),
                   "ceil_mode": False}, name=node.name)

    def op_ReduceMean(self, node, index, kinds, at):
        where = _describe(node, index)
        x = self.data_input(node, index)
        c = self.feature_map(node, index, x)[0]
        if self.opset >= 18:
            axes = self.const_input(node, index, 1, "axes", optional=True)
            axes = None if axes is None else axes.tolist()
        else:
            axes = at.get("axes")
        if axes is None or sorted(int(a) % 4 for a in axes) != [2, 3]:
            raise ValueError(f"{where}: ReduceMean over axes {axes}; only the spatial axes (2, 3) are supported")
        out = node.output[0]
        if at.get("keepdims", 1):
            self.emit("global_avg_pool", [x], out, (c, 1, 1), name=node.name)
        else:
            pooled = self.internal_name(out, "pool")
            self.emit("global_avg_pool", [x], pooled, (c, 1, 1), name=node.name)
            self.emit("flatten", [pooled], out, (c,), name=node.name)

    def reshape_to(self, node, index, x, shape):
        """Lower a reshape of computed tensor `x` to per-image `shape`."""
        where = _describe(node, index)
        src = self.shapes[x]
        out = node.output[0]
        if int(np.prod(shape)) != int(np.prod(src)):
            raise ValueError(f"{where}: reshape of (N, {src}) to (N, {shape}) changes the number of elements")
        if tuple(shape) == tuple(src):
            self.make_alias(out, x)
        elif len(shape) == 1:
            self.emit("flatten", [x], out, shape, name=node.name)
        else:
            raise ValueError(f"{where}: reshape of (N, {', '.join(map(str, src))}) to "
                             f"(N, {', '.join(map(str, shape))}) is not supported (only a flatten to (N, K))")

    def op_Flatten(self, node, index, kinds, at):
        x = self.data_input(node, index)
        rank = len(self.shapes[x]) + 1
        axis = int(at.get("axis", 1))
        if axis < 0:
            axis += rank
        if axis != 1:
            raise ValueError(f"{_describe(node, index)}: Flatten with axis={at.get('axis')} mixes the batch axis "
                             "into the features; only axis=1 is supported")
        self.reshape_to(node, index, x, (int(np.prod(self.shapes[x])),))

    def op_Squeeze(self, node, index, kinds, at):
        x = self.data_input(node, index)
        src = (1,) + self.shapes[x]
        if self.opset >= 13:
            axes = self.const_input(node, index, 1, "axes", optional=True)
            axes = None if axes is None else axes.tolist()
        else:
            axes = at.get("axes")
        if axes is None:  # squeezes every axis of size 1, the batch axis of a batch of 1 too
            raise ValueError(f"{_describe(node, index)}: Squeeze without axes depends on the batch size; "
                             "give the axes")
        axes = sorted(int(a) % len(src) for a in axes)
        if 0 in axes or any(src[a] != 1 for a in axes):
            raise ValueError(f"{_describe(node, index)}: Squeeze of axes {axes} on (N, {self.shapes[x]})")
        self.reshape_to(node, index, x, tuple(d for i, d in enumerate(src) if i not in axes and i > 0))

    def op_Unsqueeze(self, node, index, kinds, at):
        x = self.data_input(node, index)
        axes = (self.const_input(node, index, 1, "axes").tolist() if self.opset >= 13 else at.get("axes"))
        rank = len(self.shapes[x]) + 1 + len(axes)
        axes = sorted(int(a) % rank for a in axes)
        if 0 in axes:
            raise ValueError(f"{_describe(node, index)}: Unsqueeze before the batch axis is not supported")
        shape = list(self.shapes[x])
        for a in axes:
            shape.insert(a - 1, 1)
        self.reshape_to(node, index, x, tuple(shape))

    def op_Reshape(self, node, index, kinds, at):
        where = _describe(node, index)
        x = self.data_input(node, index)
        src = self.shapes[x]
        if kinds[1] == "sym":
            target, batch = self.syms[node.input[1]].values.tolist(), self.syms[node.input[1]].batch.tolist()
        else:
            target = self.const_input(node, index, 1, "shape").astype(np.int64).tolist()
            batch = [False] * len(target)
        full_src = (None,) + src
        entries = []
        for i, (t, isb) in enumerate(zip(target, batch)):
            if isb or (t == 0 and not at.get("allowzero", 0) and i == 0):
                entries.append("N")
            elif t == 0 and not at.get("allowzero", 0):
                if i >= len(full_src):
                    raise ValueError(f"{where}: shape entry 0 at axis {i} copies a missing input axis")
                entries.append(full_src[i])
            else:
                entries.append(int(t))
        if not entries or "N" in entries[1:]:
            raise ValueError(f"{where}: the batch axis must stay first, target shape {target}")
        rest = entries[1:]
        count = int(np.prod(src))
        if rest.count(-1) > 1 or (entries[0] == -1 and -1 in rest):
            raise ValueError(f"{where}: more than one -1 in the target shape {target}")
        if -1 in rest:
            known = int(np.prod([d for d in rest if d != -1]))
            if known == 0 or count % known:
                raise ValueError(f"{where}: cannot reshape (N, {src}) to {target}")
            rest = [count // known if d == -1 else d for d in rest]
        if entries[0] not in ("N", -1) and not (entries[0] == 1 and int(np.prod(rest)) == count):
            raise ValueError(f"{where}: target shape {target} fixes the batch size; keensight runs any batch")
        # A leading 1 (a model exported for batch 1) is read as the batch axis when the
        # remaining axes keep one image's element count.
        self.reshape_to(node, index, x, tuple(int(d) for d in rest))

    def op_Concat(self, node, index, kinds, at):
        where = _describe(node, index)
        xs = [self.data_input(node, index, i) for i in range(len(node.input))]
        shapes = [self.shapes[x] for x in xs]
        rank = len(shapes[0]) + 1
        axis = int(at.get("axis", 1))
        if axis < 0:
            axis += rank
        if axis != 1 or any(len(s) != rank - 1 or s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError(f"{where}: Concat on axis {at.get('axis')} of shapes {shapes}; only the channel axis "
                             "of equally sized tensors is supported")
        shape = (sum(s[0] for s in shapes),) + shapes[0][1:]
        self.emit("concat", xs, node.output[0], shape, name=node.name)

    def op_Softmax(self, node, index, kinds, at):
        where = _describe(node, index)
        x = self.data_input(node, index)
        rank = len(self.shapes[x]) + 1
        axis = int(at.get("axis", 1 if self.opset < 13 else -1))
        if axis < 0:
            axis += rank
        if rank != 2 or axis != 1:
            raise ValueError(f"{where}: Softmax on axis {at.get('axis')} of (N, {self.shapes[x]}); only the last "
                             "axis of a (N, C) vector is supported (not a feature map)")
        self.emit("softmax", [x], node.output[0], self.shapes[x], name=node.name)


def _uniform(v: Optional[np.ndarray], default: float) -> Optional[float]:
    if v is None:
        return default
    return float(v[0]) if np.all(v == v[0]) else None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


class _Fuser:
    """The rewrite rules of the module docstring, applied until none matches."""

    def __init__(self, imp: _Importer):
        self.imp = imp

    def run(self):
        rules = (self.copy_into_producer, self.merge_affines, self.scale_through_clip, self.scale_into_gate,
                 self.clip_to_hardsigmoid, self.affine_into_hardsigmoid, self.gate_to_hardswish,
                 self.affine_into_conv, self.residual,
                 self.activation_into_producer)
        changed = True
        while changed:
            changed = False
            for rule in rules:
                self.index()
                for node in list(self.imp.nodes):
                    if rule(node):
                        changed = True
                        self.index()

    def index(self):
        self.producer = {n.output: n for n in self.imp.nodes}
        self.uses: Dict[str, int] = {}
        for n in self.imp.nodes:
            for i in n.inputs:
                self.uses[i] = self.uses.get(i, 0) + 1

    def removable(self, name: str) -> bool:
        return name not in self.imp.protected and self.uses.get(name, 0) == 1

    def source(self, name: str, ops) -> Optional[Node]:
        p = self.producer.get(name)
        return p if p is not None and p.op in ops and self.removable(name) else None

    def remove(self, node: Node):
        self.imp.nodes = [n for n in self.imp.nodes if n is not node]
        self.imp.shapes.pop(node.output, None)

    def take_output(self, keeper: Node, gone: Node):
        """`keeper` now computes `gone`'s output in `gone`'s place; `gone` is removed."""
        old = keeper.output
        nodes = self.imp.nodes
        nodes.remove(keeper)
        nodes[nodes.index(gone)] = keeper
        self.imp.shapes.pop(old, None)
        keeper.output = gone.output

    # --- rules: each returns True when it changed the graph
    def copy_into_producer(self, node):
        if node.op != "activation" or node.attrs["activation"] is not None:
            return False
        p = self.source(node.inputs[0], ("conv", "dense", "add", "mul", "channel_affine", "activation", "max_pool",
                                         "avg_pool", "global_avg_pool", "concat", "flatten", "softmax"))
        if p is None:
            return False
        self.take_output(p, node)
        return True

    def activation_into_producer(self, node):
        if node.op != "activation" or node.attrs["activation"] is None:
            return False
        p = self.source(node.inputs[0], _FUSABLE_PRODUCERS)
        if p is None or p.attrs.get("activation") is not None:
            return False
        p.attrs["activation"] = node.attrs["activation"]
        self.take_output(p, node)
        return True

    @staticmethod
    def affine_of(node) -> Tuple[np.ndarray, np.ndarray]:
        c = None
        for v in node.weights.values():
            c = v.shape[0]
        s = node.weights.get("scale")
        t = node.weights.get("shift")
        s = np.ones(c) if s is None else s.astype(np.float64)
        t = np.zeros(c) if t is None else t.astype(np.float64)
        return s, t

    def merge_affines(self, node):
        if node.op != "channel_affine":
            return False
        a = self.source(node.inputs[0], ("channel_affine",))
        if a is None or a.attrs["activation"] is not None:
            return False
        sa, ta = self.affine_of(a)
        sb, tb = self.affine_of(node)
        a.weights = {"scale": (sa * sb).astype(np.float32), "shift": (ta * sb + tb).astype(np.float32)}
        a.attrs["activation"] = node.attrs["activation"]
        self.take_output(a, node)
        return True

    def clipped(self, name, x=None) -> Optional[Node]:
        """The removable producer of `name` if it is clip(affine(input)), reading `x` if given."""
        p = self.source(name, ("channel_affine", "activation"))
        if p is None:
            return None
        act = p.attrs["activation"]
        if act is None or act[0] != "clip" or (x is not None and p.inputs[0] != x):
            return None
        return p

    def scaled_clip(self, p: Node, c: float, d: float) -> Node:
        """c * clip(s x + t, lo, hi) + d with c > 0 as one clipped affine."""
        if p.op == "channel_affine":
            s, t = self.affine_of(p)
        else:
            n = self.imp.shapes[p.inputs[0]][0]
            s, t = np.ones(n), np.zeros(n)
        _, lo, hi, _, _ = p.attrs["activation"]
        return Node("channel_affine", list(p.inputs), p.output, {"activation": activation_tuple(
            ("clip", c * lo + d, c * hi + d))}, {"scale": (s * c).astype(np.float32),
                                                 "shift": (t * c + d).astype(np.float32)}, p.name)

    def scale_through_clip(self, node):
        if node.op != "channel_affine" or node.attrs["activation"] is not None:
            return False
        s, t = self.affine_of(node)
        c, d = _uniform(s, 1.0), _uniform(t, 0.0)
        if c is None or d is None or c <= 0:
            return False
        p = self.clipped(node.inputs[0])
        if p is None:
            return False
        merged = self.scaled_clip(p, c, d)
        merged.output = node.output
        nodes = self.imp.nodes
        nodes.remove(p)
        nodes[nodes.index(node)] = merged
        self.imp.shapes.pop(p.output, None)
        return True

    def scale_into_gate(self, node):
        """(x * clip(..x..)) * c -> x * (c * clip(..x..)), so the gate can become a hardsigmoid."""
        if node.op != "channel_affine" or node.attrs["activation"] is not None:
            return False
        s, t = self.affine_of(node)
        c, d = _uniform(s, 1.0), _uniform(t, 0.0)
        if c is None or d != 0.0 or c <= 0:
            return False
        m = self.source(node.inputs[0], ("mul",))
        if m is None or m.attrs["activation"] is not None:
            return False
        for gi in (0, 1):
            x, g = m.inputs[1 - gi], m.inputs[gi]
            p = self.clipped(g, x)
            if p is None:
                continue
            merged = self.scaled_clip(p, c, 0.0)
            merged.output = self.imp.internal_name(g, "scaled")
            self.imp.shapes[merged.output] = self.imp.shapes.pop(g)
            nodes = self.imp.nodes
            nodes[nodes.index(p)] = merged
            m.inputs[gi] = merged.output
            self.take_output(m, node)
            return True
        return False

    def clip_to_hardsigmoid(self, node):
        if node.op != "channel_affine" or node.attrs["activation"] is None:
            return False
        kind, lo, hi, _, _ = node.attrs["activation"]
        if kind != "clip" or not _close(lo, 0.0) or not _close(hi, 1.0):
            return False
        s, t = self.affine_of(node)
        a, b = _uniform(s, 1.0), _uniform(t, 0.0)
        if a is None or b is None:
            return False
        node.op = "activation"
        node.weights = {}
        node.attrs = {"activation": activation_tuple(("hardsigmoid", a, b))}
        return True

    def affine_into_hardsigmoid(self, node):
        """hardsigmoid(alpha (s x + t) + beta) = hardsigmoid(alpha s x + alpha t + beta), s, t uniform."""
        if node.op != "activation" or node.attrs["activation"] is None or node.attrs["activation"][0] != "hardsigmoid":
            return False
        p = self.source(node.inputs[0], ("channel_affine",))
        if p is None or p.attrs["activation"] is not None:
            return False
        s, t = self.affine_of(p)
        a, b = _uniform(s, 1.0), _uniform(t, 0.0)
        if a is None or b is None:
            return False
        _, _, _, alpha, beta = node.attrs["activation"]
        node.attrs["activation"] = activation_tuple(("hardsigmoid", alpha * a, alpha * b + beta))
        node.inputs = list(p.inputs)
        self.remove(p)
        return True

    def gate_to_hardswish(self, node):
        if node.op != "mul" or node.attrs["activation"] is not None:
            return False
        for gi in (0, 1):
            x, g = node.inputs[1 - gi], node.inputs[gi]
            p = self.source(g, ("activation",))
            if p is None or p.inputs[0] != x or p.attrs["activation"] is None:
                continue
            kind, _, _, alpha, beta = p.attrs["activation"]
            if kind == "hardsigmoid":
                act = activation_tuple(("hardswish", alpha, beta))
            elif kind == "sigmoid":
                act = activation_tuple("swish")
            else:
                continue
            node.op, node.inputs, node.attrs = "activation", [x], {"activation": act}
            self.remove(p)
            return True
        return False

    def affine_into_conv(self, node):
        if node.op != "channel_affine":
            return False
        p = self.source(node.inputs[0], ("conv", "dense"))
        if p is None or p.attrs["activation"] is not None or len(p.inputs) != 1:
            return False
        s, t = self.affine_of(node)
        w = p.weights["w"].astype(np.float64)
        b = p.weights.get("b")
        b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        p.weights = {"w": (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32),
                     "b": (b * s + t).astype(np.float32)}
        p.attrs["activation"] = node.attrs["activation"]
        self.take_output(p, node)
        return True

    def residual(self, node):
        if node.op != "add":
            return False
        a, b = node.inputs
        if self.imp.shapes[a] != self.imp.shapes[b]:
            return False
        for r, other in ((a, b), (b, a)):
            p = self.source(r, ("conv",))
            if p is None or p.attrs["activation"] is not None or len(p.inputs) != 1:
                continue
            p.inputs.append(other)
            p.attrs["activation"] = node.attrs["activation"]
            self.take_output(p, node)
            return True
        return False


def graph_from_onnx(path_or_model: Union[str, "os.PathLike[str]", Any],
                    input_shape: Optional[Sequence[int]] = None,
                    keep: Optional[Iterable[str]] = None) -> Graph:
    """Lower an ONNX model to the graph keensight's engine runs.

    Parameters
    ----------
    path_or_model : str, os.PathLike or onnx.ModelProto
        The model; it must pass ``onnx.checker``.
    input_shape : (C, H, W), optional
        One image's shape; required when the model's input has dynamic C, H or W
        (the batch axis is always dynamic). Must agree with the model's static sizes.
    keep : iterable of str, optional
        ONNX tensor names that must stay computable (not fused away), such as the
        ``outputs=`` a caller will ask for.

    Returns
    -------
    Graph
        Its ``shapes`` hold every tensor's ONNX shape without the batch axis.

    Raises
    ------
    UnsupportedOperatorError
        An operator outside keensight's set, naming its type, node name and index.
    ValueError
        A supported operator with attributes the engine does not handle (3-D
        convolutions, Gemm transA=1, Softmax over a feature map, ...), naming the node;
        a model the ONNX checker rejects; a dynamic input without `input_shape`.
    TypeError
        `path_or_model` is neither a path nor a ModelProto.
    """
    model = _load(path_or_model)
    if isinstance(keep, str):
        keep = [keep]
    return _Importer(model, input_shape, keep).run()
