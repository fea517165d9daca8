"""Each example script runs and prints the seed's outputs."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd=None):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", script), *args],
        capture_output=True, text=True, timeout=600, cwd=cwd or ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def squash(s):
    return " ".join(s.replace("[", " [ ").replace("]", " ] ").split())


EXPECTED = {
    "01_cross_correlation.py": ["[[19. 25.] [37. 43.]]"],
    "02_edge_detection.py": [
        " ".join(["[1. 1. 0. 0. 0. 0. 1. 1.]"] * 6),
        " ".join(["[ 0. 1. 0. 0. 0. -1. 0.]"] * 6),
        " ".join(["[0. 0. 0. 0. 0.]"] * 8),
    ],
    "04_padding_and_stride.py": ["(8, 8) (8, 8) (4, 4) (2, 2)"],
    "05_channels.py": [
        "[[ 56. 72.] [104. 120.]]",
        "(3, 2, 2, 2) (3, 2, 2)",
        "[[[ 56. 72.] [104. 120.]] [[ 76. 100.] [148. 172.]] [[ 96. 128.] [192. 224.]]]",
        "True",
    ],
    "06_pooling.py": [
        "[[4. 5.] [7. 8.]]",
        "[[2. 3.] [5. 6.]]",
        "[[[[10.]]]]",
        "[[[[ 5. 7.] [13. 15.]]]]",
        "[[[[ 0. 3.] [ 8. 11.] [12. 15.]]]]",
        "[[[[ 5. 7.] [13. 15.]] [[ 6. 8.] [14. 16.]]]]",
    ],
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_seed_section_example_prints_the_seed_outputs(script):
    out = squash(run(script))
    for expected in EXPECTED[script]:
        assert squash(expected) in out, (expected, out)


def test_learning_a_kernel_example():
    lines = run("03_learning_a_kernel.py").splitlines()
    losses = [float(l.split()[-1]) for l in lines if l.startswith("batch")]
    assert len(losses) == 10
    assert 8.0 < losses[0] < 16.0 and losses[-1] < 0.01  # "from about 12 to about 0.004"
    assert "Conv2D(1 -> 1, kernel_size=(1, 2), stride=(1, 1))" in lines


def test_jconv_demo_prints_every_seed_output():
    proc = subprocess.run([sys.executable, "-m", "jconv._src.cli", "demo"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = squash(proc.stdout)
    for script, expected in EXPECTED.items():
        for e in expected:
            if script != "04_padding_and_stride.py" and e != "(3, 2, 2, 2) (3, 2, 2)":
                assert squash(e) in out, e
    assert "((3, 2, 2, 2), (3, 2, 2))" in proc.stdout
    assert "(8, 8)\n(8, 8)\n(4, 4)\n(2, 2)" in proc.stdout
    seed_run = "\n".join(f"batch {i + 1}, loss {l}" for i, l in enumerate(
        ["12.080", "4.949", "2.028", "0.831", "0.341", "0.140", "0.057", "0.024", "0.010", "0.004"]))
    assert seed_run in proc.stdout


def test_train_lenet_example(tmp_path):
    out = run("train_lenet.py", cwd=tmp_path)
    accs = [float(l.split()[-1]) for l in out.splitlines() if l.startswith("epoch")]
    assert len(accs) == 5 and accs[-1] > 0.9
    assert "61,706" in out
    assert sum(1 for l in open(os.path.join(ROOT, "examples", "train_lenet.py"))) < 40


def test_plot_kernels_example(tmp_path):
    path = tmp_path / "features.png"
    run("plot_kernels.py", str(path), cwd=tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


@pytest.mark.parametrize("model", ["lenet", "bn-lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18",
                                   "resnext", "regnet", "densenet"])
def test_modern_cnns_example_trains_each_model_a_few_steps(model, tmp_path):
    # 64 images at its recipe's batch size: one or two steps of the real recipe, then an evaluation
    out = run("modern_cnns.py", model, "--epochs", "1", "--examples", "64", cwd=tmp_path)
    assert out.splitlines()[0].split() == ["layer", "output", "shape", "params"] and "(1, 10)" in out
    assert "recipe: " in out and "epoch   1  loss " in out and "test accuracy " in out


def test_readme_state_example_runs():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("### State and randomness")[1].split("```python\n")[1].split("```")[0]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["y"].shape == (8, 10)
    assert namespace["state"][0][1]["running_mean"].shape == (64,)
