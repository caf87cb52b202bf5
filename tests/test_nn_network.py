"""keensight.nn.Network mechanics: the buffer plan, fused bottleneck strips, thread and
batch invariance, concurrent runs, outputs= of any tensor, save / load / pickle and
corrupt files, on MobileNet v2 (random weights, the lecture's table) and the default
EfficientNet-Lite0 against onnxruntime."""
from __future__ import annotations

import os
import pickle
import threading

import numpy as np
import onnxruntime as ort
import pytest

import keensight
from keensight.nn import Graph, InvertedResidual, Network, Node, zoo


def _ort(model, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    data = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    return ort.InferenceSession(str(data) if isinstance(data, os.PathLike) else data, so,
                                providers=["CPUExecutionProvider"])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def mobilenet_v2():
    # 96 x 96 keeps it quick; the expanded tensors of the first blocks (48 x 48 x 96)
    # exceed the strip budget, so the fused bottleneck path runs.
    model = zoo.mobilenet_v2_onnx(resolution=96, seed=3)
    return model, Network.from_onnx(model)


@pytest.fixture(scope="module")
def images96():
    return np.random.default_rng(7).standard_normal((3, 3, 96, 96)).astype(np.float32)


def test_mobilenet_v2_matches_onnxruntime(mobilenet_v2, images96):
    model, net = mobilenet_v2
    ref = _ort(model).run(None, {"input": images96})[0]
    got = net.run(images96)["logits"]
    assert got.shape == ref.shape == (3, 1000)
    assert _rel(got, ref) < 1e-4


def test_fused_blocks_equal_the_nodes_run_one_by_one(mobilenet_v2, images96):
    model, net = mobilenet_v2
    # Asking for a tensor inside a bottleneck runs every node on its own.
    inner = [n.output for n in net.graph.nodes if n.op == "conv" and n.attrs.get("groups", 1) > 1][0]
    both = net.run(images96, outputs=["logits", inner])
    fused = net.run(images96)["logits"]
    np.testing.assert_array_equal(both["logits"], fused)
    assert both[inner].ndim == 4


def test_results_do_not_depend_on_threads_or_batch(mobilenet_v2, images96):
    model, net = mobilenet_v2
    outs = []
    for t in (1, 2, 4):
        net.threads = t
        outs.append(net.run(images96)["logits"])
        for i in range(3):  # each image alone
            np.testing.assert_array_equal(net.run(images96[i:i + 1])["logits"][0], outs[-1][i])
    net.threads = None
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_concurrent_runs_on_one_network(mobilenet_v2, images96):
    _, net = mobilenet_v2
    want = net.run(images96)["logits"]
    errors, results = [], [None] * 8

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = net.run(images96)["logits"]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_outputs_name_any_tensor_even_one_fused_away(mobilenet_v2, images96):
    model, net = mobilenet_v2
    import onnx

    # A Conv output that the importer fused into a Clip (relu6): not in the graph, yet requestable.
    conv0 = next(n for n in model.graph.node if n.op_type == "Conv").output[0]
    bn0 = next(n for n in model.graph.node if n.op_type == "BatchNormalization").output[0]
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    extended.graph.output.append(onnx.helper.make_tensor_value_info(bn0, onnx.TensorProto.FLOAT, None))
    ref = _ort(extended).run([bn0], {"input": images96})[0]
    got = net.run(images96, outputs=[bn0, "logits"])
    assert set(got) == {bn0, "logits"}
    assert _rel(got[bn0], ref) < 1e-4
    assert conv0 != bn0
    with pytest.raises(KeyError, match="no tensor named"):
        net.run(images96, outputs=["not-a-tensor"])


def test_bad_inputs_are_clear_errors(mobilenet_v2):
    _, net = mobilenet_v2
    with pytest.raises(ValueError, match="shape"):
        net.run(np.zeros((1, 3, 95, 96), np.float32))
    with pytest.raises(ValueError, match="dimensions"):
        net.run(np.zeros((3, 96, 96), np.float32))
    with pytest.raises(ValueError, match="at least one image"):
        net.run(np.zeros((0, 3, 96, 96), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        net.run(np.zeros((1, 3, 96, 96), np.complex64))
    with pytest.raises(TypeError, match="tensor names"):
        net.run(np.zeros((1, 3, 96, 96), np.float32), outputs=[3])


def test_save_load_bytes_pickle_round_trip(mobilenet_v2, images96, tmp_path):
    _, net = mobilenet_v2
    want = net.run(images96)["logits"]
    path = tmp_path / "mbv2.ksnet"
    net.save(path)
    for other in (Network.load(path), Network.from_bytes(net.to_bytes()), pickle.loads(pickle.dumps(net))):
        np.testing.assert_array_equal(other.run(images96)["logits"], want)
        assert other.output_names == net.output_names
    assert path.read_bytes() == net.to_bytes()


def test_corrupt_and_truncated_files_are_refused(mobilenet_v2, tmp_path):
    _, net = mobilenet_v2
    data = bytearray(net.to_bytes())
    for where in (0, 12, len(data) // 2, len(data) - 3):
        bad = bytearray(data)
        bad[where] ^= 0x40
        with pytest.raises(ValueError):
            Network.from_bytes(bytes(bad))
    with pytest.raises(ValueError):
        Network.from_bytes(bytes(data[:-20]))
    p = tmp_path / "cut.ksnet"
    p.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ValueError):
        Network.load(p)
    with pytest.raises(TypeError):
        Network.from_bytes("not bytes")  # type: ignore[arg-type]


def test_save_does_not_follow_a_symlink_at_the_target(mobilenet_v2, tmp_path):
    _, net = mobilenet_v2
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "net.ksnet"
    link.symlink_to(victim)
    net.save(link)
    assert victim.read_text() == "keep me"
    assert not link.is_symlink()
    Network.load(link)


def test_the_plan_reuses_buffers():
    # A chain of 20 1x1 layers of 8 x 32 x 32 needs two activation slots, not twenty.
    rng = np.random.default_rng(0)
    nodes, prev = [], "x"
    for i in range(20):
        w = rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.5
        nodes.append(Node("conv", [prev], f"y{i}", weights={"w": w}))
        prev = f"y{i}"
    net = Network(Graph(inputs={"x": (8, 32, 32)}, nodes=nodes, outputs=[prev]))
    per_tensor = 8 * 32 * 32 * 4
    assert net.arena_bytes == 2 * per_tensor
    x = rng.standard_normal((2, 8, 32, 32)).astype(np.float32)
    y = x
    for n in nodes:
        y = keensight.nn.conv2d(y, n.weights["w"])
    np.testing.assert_allclose(net.run(x)[prev], y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("t, stride, c_in, c_out", [(6, 1, 16, 16), (6, 2, 16, 24), (1, 1, 24, 24), (4, 1, 8, 12)])
def test_inverted_residual_fused_and_not(t, stride, c_in, c_out):
    """A bottleneck big enough to run in strips equals the same block run node by node."""
    rng = np.random.default_rng(t * 10 + stride)
    hidden = c_in * t
    ew = None if t == 1 else rng.standard_normal((hidden, c_in)).astype(np.float32) * 0.3
    block = InvertedResidual(ew, None if ew is None else rng.standard_normal(hidden).astype(np.float32),
                             rng.standard_normal((hidden, 1, 3, 3)).astype(np.float32) * 0.3,
                             rng.standard_normal(hidden).astype(np.float32),
                             rng.standard_normal((c_out, hidden)).astype(np.float32) * 0.3,
                             rng.standard_normal(c_out).astype(np.float32), stride=stride)
    x = rng.standard_normal((2, c_in, 70, 66)).astype(np.float32)
    y = block(x)
    net = block._network(tuple(x.shape[1:]))
    inner = "dw"
    unfused = net.run(x, outputs=["y", inner])["y"]
    np.testing.assert_array_equal(y, unfused)
    assert block.residual == (stride == 1 and c_in == c_out)


@pytest.fixture(scope="module")
def lite0():
    path = keensight.models.get_model_path()
    return path, Network.from_onnx(path)


def test_efficientnet_lite0_matches_onnxruntime_and_labels_photos(lite0):
    from skimage import data as skdata

    from keensight.extract import preprocess

    path, net = lite0
    photos = [skdata.chelsea(), skdata.coffee(), skdata.astronaut(), skdata.rocket()]
    x = preprocess(photos, "efficientnet-lite0")
    sess = _ort(path)
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    got = net.run(x)
    for name in ("embedding", "logits"):
        assert got[name].shape == ref[name].shape
        assert _rel(got[name], ref[name]) < 1e-4, name
    np.testing.assert_array_equal(got["logits"].argmax(1), ref["logits"].argmax(1))
    names = keensight.models.imagenet_classes()
    assert "cat" in names[int(got["logits"][0].argmax())].lower()      # chelsea
    assert "espresso" in names[int(got["logits"][1].argmax())].lower()  # coffee
