"""What every example promises: --help, learning, the headline, --plot, --resume."""

from __future__ import annotations

import importlib
import re

import matplotlib.image
import pytest
from example_runs import Interrupted, assert_same_checkpoints, crashing_manager, epoch_log, run

from ramie.examples import EXAMPLES, common

# Tiny settings: a few seconds each on 2 cores, and still enough to learn.
TINY = {
    "mnist": ["--epochs", "3"],
    "polyak": ["--epochs", "3"],
    "lora": ["--epochs", "2", "--finetune-epochs", "2"],
    "gnn": ["--epochs", "3", "--steps-per-epoch", "5"],
    "resnet": ["--epochs", "3", "--width", "8", "--stages", "1,1", "--image-size", "16"],
    "lm": ["--epochs", "3", "--steps-per-epoch", "15", "--features", "32", "--context", "32"]
    + ["--sample-length", "20"],
    "vae": ["--epochs", "3"],
    "gan": ["--epochs", "3"],
    "seq2seq": ["--epochs", "3", "--steps-per-epoch", "100"],
    "segmentation": ["--epochs", "3", "--train-size", "240", "--image-size", "24", "--width", "8"]
    + ["--learning-rate", "5e-3"],
}
PCT = r"(\d+\.\d)%"
HEADLINES = {
    "mnist": re.compile(rf"test accuracy: {PCT}"),
    "polyak": re.compile(rf"test accuracy: {PCT}, with the EMA weights: {PCT}"),
    "lora": re.compile(rf"shifted task: test accuracy {PCT} frozen -> {PCT} with LoRA"),
    "gnn": re.compile(rf"test accuracy \(unlabelled members\): {PCT} ramie, {PCT} pure JAX"),
    "resnet": re.compile(rf"test accuracy: {PCT}"),
    "lm": re.compile(r"validation bits per character: (\d+\.\d{3})"),
    "vae": re.compile(r"test ELBO: (-\d+\.\d\d) nats per image"),
    "gan": re.compile(
        rf"discriminator loss (\d\.\d{{3}}), generator loss (\d+\.\d{{3}}), "
        rf"discriminator accuracy {PCT}"
    ),
    "seq2seq": re.compile(rf"test exact-match accuracy: {PCT}"),
    "segmentation": re.compile(rf"test mean IoU: {PCT}"),
}


def headline_numbers(name: str, result) -> list[float]:
    """The numbers the last printed line must show, from main()'s return value."""
    if name in ("mnist", "resnet", "vae", "seq2seq", "segmentation"):
        return [result]
    if name == "lm":
        return [result["valid_bpc"]]
    if name == "gan":
        return [result["d_loss"], result["g_loss"], result["d_accuracy"]]
    if name == "polyak":
        return list(result)
    if name == "lora":
        return [result["frozen"], result["lora"]]
    return [result["ramie_test_accuracy"], result["pure_test_accuracy"]]


def shown_numbers(match: re.Match) -> list[tuple[float, float]]:
    """A headline's numbers (percentages as fractions), each with its rounding error bound."""
    numbers = []
    for group, text in enumerate(match.groups(), 1):
        scale = 100 if match.string[match.end(group) : match.end(group) + 1] == "%" else 1
        decimals = len(text.partition(".")[2])
        numbers.append((float(text) / scale, 0.6 * 10**-decimals / scale))
    return numbers


def learning_checks(name: str, log: list[dict[str, float]]) -> None:
    """The loss falls and the accuracy ends well above chance."""
    if name == "gnn":  # two clubs: chance is 50%
        for route in ("ramie", "pure"):
            losses = [row[f"{route}_loss"] for row in log]
            assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]
        assert log[-1]["ramie_test_accuracy"] >= 0.8
        return
    first, last = log[0], log[-1]
    if name == "lm":  # 96 characters: chance is log2(96) = 6.6 bits per character
        assert last["train_loss"] < first["train_loss"] and last["valid_bpc"] < first["valid_bpc"]
        assert last["valid_bpc"] < 4.5
        return
    if name == "gan":  # a game, not a descent: both losses move, neither side wins outright
        for loss in ("d_loss", "g_loss"):
            assert len({round(row[loss], 3) for row in log}) == len(log)
        assert 0.5 < log[-1]["d_accuracy"] < 1.0
        return
    if name == "seq2seq":  # guessing a whole 2- or 3-character sum: chance is well under 1%
        assert last["train_loss"] < first["train_loss"] - 0.3
        assert last["test_exact_match_accuracy"] > 0.2
        return
    if name == "segmentation":  # all background: 0.2 mean IoU; this needs the shapes right
        assert last["train_loss"] < first["train_loss"] and last["test_mean_iou"] > 0.3
        return
    if name == "vae":  # the negative ELBO falls, both terms are alive
        assert (
            last["train_loss"] < first["train_loss"] - 5 and last["test_loss"] < first["test_loss"]
        )
        assert last["test_kl"] > 1 and last["test_reconstruction"] < first["test_reconstruction"]
        return
    if name == "lora":  # epochs 1-2 on the base task, 3-4 on the shifted one (adapters)
        last = log[1]
        assert log[3]["train_loss"] < log[2]["train_loss"]
        assert log[3]["shifted_test_accuracy"] > log[1]["shifted_test_accuracy"] + 0.2
    assert last["train_loss"] < first["train_loss"]
    # Ten digits: chance is 10%. The tiny resnet (16x16, 8 channels, 3 epochs) is slower.
    assert last["test_accuracy"] > (0.35 if name == "resnet" else 0.6)


def test_the_examples_are_all_here():
    assert set(EXAMPLES) == set(TINY)


@pytest.mark.parametrize("name", EXAMPLES)
def test_help(capsys, name):
    module = importlib.import_module(f"ramie.examples.{name}")
    with pytest.raises(SystemExit) as exit:
        module.main(["--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m ramie.examples.{name} ")
    for flag in ("--epochs", "--seed", "--workdir", "--resume", "--plot"):
        assert flag in out


@pytest.mark.parametrize("name", EXAMPLES)
def test_resume_needs_a_workdir(capsys, name):
    module = importlib.import_module(f"ramie.examples.{name}")
    with pytest.raises(SystemExit) as exit:
        module.main(["--resume"])
    assert exit.value.code == 2
    assert "error: --resume needs --workdir" in capsys.readouterr().err


@pytest.mark.parametrize("name", EXAMPLES)
def test_learns_and_plots(capsys, tmp_path, name):
    png = tmp_path / "curves.png"
    result, lines = run(capsys, name, [*TINY[name], "--plot", str(png)])
    log = epoch_log(lines)
    epochs = 4 if name == "lora" else 3
    assert [row["epoch"] for row in log] == list(range(1, epochs + 1))
    learning_checks(name, log)
    match = HEADLINES[name].fullmatch(lines[-1])
    assert match, lines[-1]
    expected = headline_numbers(name, result)
    assert len(expected) == len(match.groups())
    for (shown, rounding), value in zip(shown_numbers(match), expected, strict=True):
        assert shown == pytest.approx(value, abs=rounding)
    assert f"plot written to {png.resolve()}" in lines
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, channels = matplotlib.image.imread(png).shape
    assert (width, height) == (1000, 400) and channels in (3, 4)


@pytest.mark.parametrize("name", EXAMPLES)
def test_plot_without_matplotlib_says_how_to_install_it(capsys, tmp_path, no_matplotlib, name):
    png = tmp_path / "curves.png"
    flags = [*TINY[name], "--epochs", "1"]  # argparse: the last --epochs wins
    flags += ["--finetune-epochs", "1"] if name == "lora" else []
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401  (the fixture really hides it)
    _, lines = run(capsys, name, [*flags, "--plot", str(png)])
    assert common.PLOT_MISSING.format(path=png) in lines
    assert "pip install 'ramie-examples[plot]'" in common.PLOT_MISSING
    assert not png.exists()
    assert HEADLINES[name].fullmatch(lines[-1]), lines[-1]


CRASHES = [
    ("mnist", 2),
    ("polyak", 2),
    ("lora", 1),
    ("lora", 3),
    ("gnn", 2),
    ("resnet", 2),
    ("lm", 2),
    ("vae", 2),
    ("gan", 2),
    ("seq2seq", 2),
    ("segmentation", 2),
]


@pytest.mark.parametrize("name, crash", CRASHES)
def test_resume_gives_the_uninterrupted_result(capsys, monkeypatch, tmp_path, name, crash):
    straight_dir, crashed_dir = str(tmp_path / "straight"), str(tmp_path / "crashed")
    _, straight = run(capsys, name, [*TINY[name], "--workdir", straight_dir])

    module = importlib.import_module(f"ramie.examples.{name}")
    with monkeypatch.context() as patch:
        patch.setattr(module, "CheckpointManager", crashing_manager(crash))
        with pytest.raises(Interrupted):
            module.main([*TINY[name], "--workdir", crashed_dir])
    _, resumed = run(capsys, name, [*TINY[name], "--workdir", crashed_dir, "--resume"])

    assert f"resumed from {crashed_dir} after epoch {crash}" in resumed
    assert epoch_log(resumed) == epoch_log(straight)[crash:]
    assert resumed[-1] == straight[-1]
    assert_same_checkpoints(straight_dir, crashed_dir)


def test_resume_with_an_empty_workdir_starts_afresh(capsys, tmp_path):
    _, lines = run(capsys, "gnn", [*TINY["gnn"], "--workdir", str(tmp_path), "--resume"])
    assert not any(line.startswith("resumed") for line in lines)
    assert [row["epoch"] for row in epoch_log(lines)] == [1, 2, 3]
