"""The README's tour runs as written, with the facade."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="tests run outside the repository checkout")
def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    assert float(namespace["loss"]) < 0.5
    # 1 eager call + 100 steps of the split/merge loop + 100 under nn.jit + 20 training
    assert int(namespace["model"].calls.value) == 221
    assert int(namespace["optimizer"].step.value) == 20
    assert namespace["ema"].averaged is not namespace["model"]
    assert namespace["smoothed"].shape == (32, 1)
    assert 0 < float(namespace["metrics"].compute()["loss"]) < 0.5
    assert "layers" in capsys.readouterr().out
