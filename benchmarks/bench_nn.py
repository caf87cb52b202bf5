"""The CNN engine vs onnxruntime, side by side: ``python -m pytest benchmarks/bench_nn.py --benchmark-only``.

One benchmark group per workload and thread count holds the onnxruntime and the keensight
timing of the same ONNX graph: pointwise (1x1) layers of MobileNet v2 / EfficientNet-Lite0
at batch 1 (keensight: the layer as a prepared one-node Network), and EfficientNet-Lite0 and
MobileNet v2 1.0 at batch 1 and 8. Every benchmark first checks (untimed) that keensight
agrees with the reference (a float64 einsum for a layer, onnxruntime for a network); none
asserts on speed. report_nn.py prints the full comparison (GFLOP/s, % of FMA peak, memory).
"""
import pytest

import nn_workload as nw

THREADS = (1, nw.all_cores())
BATCHES = (1, 8)
NETWORKS = nw.network_models()


def _extra_info(benchmark, flops_per_call: float, target=None) -> None:
    benchmark.extra_info["gflop_per_call"] = flops_per_call / 1e9
    if target is not None:
        benchmark.extra_info["target_ratio"] = target


@pytest.mark.parametrize("impl", ["onnxruntime", "keensight"])
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("layer", nw.POINTWISE_LAYERS, ids=[layer.id for layer in nw.POINTWISE_LAYERS])
def test_pointwise(benchmark, layer, threads, impl):
    wl = nw.PointwiseWorkload(layer)
    run = wl.onnxruntime(threads) if impl == "onnxruntime" else wl.keensight_network(threads)
    err = nw.max_relative_error(wl.reference(), run())
    assert err <= nw.TOLERANCE, f"{impl} on {layer.name}: relative error {err:.3g}"
    benchmark.group = f"pointwise {layer.name} | {threads} thread(s)"
    _extra_info(benchmark, layer.flops)
    benchmark(run)


@pytest.mark.parametrize("impl", ["onnxruntime", "keensight"])
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"threads={t}")
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"batch={b}")
@pytest.mark.parametrize("net", NETWORKS, ids=[n.id for n in NETWORKS])
def test_network(benchmark, net, batch, threads, impl):
    wl = nw.NetworkWorkload(net, batch)
    ort_run = wl.onnxruntime(threads)
    if impl == "onnxruntime":
        run = ort_run
    else:
        run = wl.keensight(threads)
        out = run()
        for name, ref in zip(wl.output_names(), ort_run()):
            err = nw.max_relative_error(ref, out[name])
            assert err <= nw.TOLERANCE, f"keensight {net.name} batch {batch}, output {name}: relative error {err:.3g}"
        del ort_run
    benchmark.group = f"{net.name} batch {batch} | {threads} thread(s)"
    _extra_info(benchmark, batch * sum(nw.flops_per_image(net.model).values()),
                net.target if batch == 1 and threads == 1 else None)
    benchmark(run)
