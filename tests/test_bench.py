"""The benchmark runs (quick mode); no timing assertions."""

import subprocess
import sys

import jconv as jc


def test_bench_quick_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "jconv._src.cli", "bench", "--quick"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| workload | jconv ms | jconv, XLA convs ms | PyTorch ms |" in proc.stdout
    assert "CPU convolutions: " in proc.stdout  # the backend, in one line
    if jc.cpu_conv_backend() == "onednn":  # both backends side by side on every convolution row
        conv_rows = [r for r in proc.stdout.splitlines() if r.startswith(("| conv", "| LeNet"))]
        assert len(conv_rows) == 9 and all(r.split("|")[3].strip() != "-" for r in conv_rows), conv_rows
    for row in ("sgemm", "conv 3x3", "conv 1x1", "conv 3x3 on 2x2 maps", "max pool 2x2/2", "ResNet stem",
                "avg pool 2x2/2", "LeNet conv1", "LeNet conv2", "train step", "examples/s"):
        assert row in proc.stdout, row
