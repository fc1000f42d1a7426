"""Start-up checks that need the registries: every named option exists, and the Ray
cluster answers. Light (no torch), so a bad command fails in about a second."""

from __future__ import annotations

from omegaconf import DictConfig

from nas.config import ConfigError, device_profiles, is_multi_device
from nas.hw import LATENCY_METHODS
from nas.pipeline import DATASETS, STRATEGIES
from nas.runners import RUNNERS, check_address
from nas.study import EARLY_STOPPERS, SAMPLERS

__all__ = ["TEACHER_FORMS", "preflight"]

TEACHER_FORMS = "'largest' or 'timm:<model name>'"


def preflight(cfg: DictConfig) -> None:
    """Refuse, with one line, a config naming something no registry holds, or a Ray
    cluster that does not answer. Run after composing, before anything heavy."""
    DATASETS.check(cfg.dataset.name, key="dataset.name")
    RUNNERS.check(cfg.runner.name, key="runner")
    SAMPLERS.check(cfg.sampler.name, key="sampler.name")
    EARLY_STOPPERS.check(cfg.early_stop.name, key="early_stop.name")
    strategy = cfg.get("strategy")
    if strategy is not None:
        STRATEGIES.check(strategy.name, key="strategy")
    teacher = str(cfg.compress.teacher)
    if teacher != "largest" and not (teacher.startswith("timm:") and len(teacher) > 5):
        raise ConfigError(f"compress.teacher={teacher!r}; allowed {TEACHER_FORMS}")
    for name, h in device_profiles(cfg).items():
        at = f"devices.{name}" if is_multi_device(cfg) else "hw"
        LATENCY_METHODS.check(h.latency, key=f"{at}.latency")
    check_address(cfg.runner)
