"""A user's own search space: a decorator in their module plus a YAML in their conf dir."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SPACE = """
from __future__ import annotations
from dataclasses import dataclass, field
from torch import nn
from search_spaces import InputSpec, SearchSpace, register_search_space

@dataclass
class WideMLPConfig:
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])

class WideMLP(SearchSpace):
    def __init__(self, cfg: WideMLPConfig) -> None:
        self.cfg = cfg

    def sample(self, suggest):
        return {"width": suggest.suggest_categorical("width", self.cfg.widths)}

    def build(self, arch, spec: InputSpec) -> nn.Module:
        d = spec.in_chans * spec.image_size**2
        return nn.Sequential(nn.Flatten(), nn.Linear(d, arch["width"]), nn.ReLU(),
                             nn.Linear(arch["width"], spec.num_classes))

@register_search_space("widemlp", config=WideMLPConfig)
def make_widemlp(cfg: WideMLPConfig) -> SearchSpace:
    return WideMLP(cfg)
"""


def test_user_search_space_runs_a_search(tmp_path: Path, fast) -> None:
    (tmp_path / "my_spaces.py").write_text(textwrap.dedent(SPACE))
    conf = tmp_path / "my_conf" / "search_space"
    conf.mkdir(parents=True)
    (conf / "widemlp.yaml").write_text("defaults:\n  - widemlp_schema\nwidths: [16, 32]\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [
            sys.executable, "-m", "nas.search", "--plugin", "my_spaces",
            f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
            *fast("search_space=widemlp", "search.n_trials=2"),
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Pareto front" in r.stdout
    assert list(tmp_path.glob("*.journal")) and (tmp_path / "mlflow.db").exists()
