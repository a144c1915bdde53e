"""The CUDA calls of graph mode and packing exist in this torch, with the arguments used.

Those lines run only on a GPU (tests/gpu/test_graphs_packing_on_device.py); a CPU build
of torch still has the Python classes, so a misspelt call fails here, in CI.
"""

import inspect

import torch


def test_graph_capture_calls_exist():
    graph = torch.cuda.CUDAGraph
    # register_generator_state lives on the C++ base, absent from a CPU build's stand-in
    for name in ("replay", "pool", "capture_begin", "capture_end"):
        assert callable(getattr(graph, name)), name
    assert "stream" in inspect.signature(torch.cuda.graph.__init__).parameters
    # only asked about a CUDA tensor's stream (noisy BN): a CPU build raises when called
    assert callable(torch.cuda.is_current_stream_capturing)


def test_stream_and_generator_calls_exist():
    for name in ("wait_stream", "synchronize"):
        assert callable(getattr(torch.cuda.Stream, name)), name
    for fn in (torch.cuda.current_stream, torch.cuda.stream, torch.cuda.set_sync_debug_mode,
               torch.Tensor.record_stream):  # fmt: skip
        assert callable(fn)
    for name in ("graphsafe_get_state", "graphsafe_set_state", "clone_state"):
        assert callable(getattr(torch.Generator, name)), name
    assert hasattr(torch.cuda, "default_generators")
