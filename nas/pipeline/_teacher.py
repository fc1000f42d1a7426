"""Distillation teachers: trained once per search, cached on disk, shared by trials.

A teacher is loaded lazily, the first time a distilled candidate trains, so a search
that never samples distillation never pays for one. The "largest" teacher is the
space's largest model trained with the search's own loop and budget; its artifact is
cached under a key of everything that changes it, and a file lock makes concurrent
workers (Ray trials on one host) train it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import compress
from nas.config import Registry
from nas.pipeline._data import Splits
from nas.pipeline._recipe import Recipe, train_compressed
from nas.pipeline._train import accuracy
from search_spaces import SearchSpace, artifact_meta, build_from_meta

__all__ = ["TEACHERS", "LargestTeacher", "TimmTeacher", "make_teacher", "teacher_epochs"]


class LargestTeacher:
    """The largest architecture of ``space``, trained on ``splits`` and cached."""

    def __init__(
        self,
        *,
        space: SearchSpace,
        space_cfg: dict[str, Any],
        splits: Splits,
        train_cfg: Any,
        epochs: int,
        seed: int,
        cache_dir: Path,
    ) -> None:
        self.space, self.space_cfg, self.splits = space, space_cfg, splits
        self.train_cfg, self.epochs, self.seed = train_cfg, epochs, seed
        _, self.arch = space.extremes()
        key = {
            "space": space.name,
            "space_cfg": space_cfg,
            "arch": self.arch,
            "spec": asdict(splits.spec),
            "data": splits.fingerprint,
            "epochs": epochs,
            "batch_size": train_cfg.batch_size,
            "lr": train_cfg.lr or space.default_lr,
            "weight_decay": train_cfg.weight_decay,
            "seed": seed,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = cache_dir / f"teacher_{space.name}_{digest}.dsz"
        self._model: nn.Module | None = None
        self.val_accuracy: float | None = None
        # Where it trains (train.device, resolved); the cached file is the same anywhere.
        self.device, self.precision = "cpu", "fp32"

    def _meta(self) -> dict[str, Any]:
        return artifact_meta(self.space, self.space_cfg, self.arch, self.splits.spec, {})

    def describe(self) -> str:
        state = "cached" if self.path.exists() else "not cached yet; trains first"
        return f"largest {self.space.name} model, {self.epochs} epochs ({state})"

    def get(self) -> nn.Module:
        if self._model is not None:
            return self._model
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker trains, the others wait and load
            if not self.path.exists():
                self._train_and_cache()
        model = compress.load(self.path, build_from_meta)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.val_accuracy = accuracy(model, self.splits.val)
        self._model = model
        return model

    def _train_and_cache(self) -> None:
        t = self.train_cfg
        print(
            f"Training the distillation teacher (largest {self.space.name} model, "
            f"{self.epochs} epochs); cached at {self.path}",
            file=sys.stderr,
        )
        start = time.monotonic()
        torch.manual_seed(self.seed)
        model = self.space.build(self.arch, self.splits.spec)
        recipe = Recipe.from_config(t, None, default_lr=self.space.default_lr, epochs=self.epochs)
        model = train_compressed(
            model, self.splits, recipe, compression=[], seed=self.seed,
            device=self.device, precision=self.precision,
        ).model  # fmt: skip
        tmp = self.path.with_suffix(".tmp")
        compress.export(model, tmp, meta=self._meta())
        tmp.replace(self.path)  # atomic: a crash never leaves a half-written teacher
        print(f"Teacher trained in {time.monotonic() - start:.0f} s", file=sys.stderr)


class TimmTeacher:
    """A user's timm model with a local checkpoint (state dict; never downloaded)."""

    def __init__(self, model_name: str, checkpoint: Path, splits: Splits) -> None:
        self.model_name, self.checkpoint, self.splits = model_name, checkpoint, splits
        self._model: nn.Module | None = None

    def describe(self) -> str:
        return f"timm {self.model_name} from {self.checkpoint}"

    def get(self) -> nn.Module:
        if self._model is not None:
            return self._model
        import timm

        spec = self.splits.spec
        model = timm.create_model(
            self.model_name,
            pretrained=False,
            num_classes=spec.num_classes,
            in_chans=spec.in_chans,
        )
        state = _load_state(self.checkpoint)
        model.load_state_dict(state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = model
        return model


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    # A user's file: weights only, never arbitrary pickled objects.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


TEACHER_EPOCHS_FACTOR = 3


def teacher_epochs(cfg: Any) -> int:
    """The largest-model teacher's epochs: ``compress.teacher_epochs``, or 3x the students'."""
    return int(cfg.compress.teacher_epochs or TEACHER_EPOCHS_FACTOR * cfg.train.epochs)


TeacherFactory = Callable[..., "LargestTeacher | TimmTeacher"]
TEACHERS: Registry[TeacherFactory] = Registry("compress.teacher")
"""Teacher factories by the part of ``compress.teacher`` before any ``:``."""


@TEACHERS.register("largest")
def _largest(
    cfg: Any, arg: str, *, space: SearchSpace, space_cfg: dict[str, Any], splits: Splits,
    cache_dir: Path,
) -> LargestTeacher:  # fmt: skip
    return LargestTeacher(
        space=space,
        space_cfg=space_cfg,
        splits=splits,
        train_cfg=cfg.train,
        epochs=teacher_epochs(cfg),
        seed=int(cfg.search.seed),
        cache_dir=cache_dir,
    )


@TEACHERS.register("timm")
def _timm(cfg: Any, arg: str, *, splits: Splits, **_: Any) -> TimmTeacher:
    return TimmTeacher(arg, Path(cfg.compress.teacher_checkpoint).expanduser(), splits)


def make_teacher(
    cfg: Any,
    *,
    space: SearchSpace,
    space_cfg: dict[str, Any],
    splits: Splits,
    cache_dir: Path,
    device: str = "cpu",
    precision: str = "fp32",
) -> LargestTeacher | TimmTeacher | None:
    """The teacher the ``compress`` config asks for, or None when distillation is off.

    ``compress.teacher`` is ``largest`` or ``timm:<model name>``. A teacher that trains
    does so on ``device`` at ``precision``; every teacher follows its student there.
    """
    if True not in list(cfg.compress.distill):
        return None
    name, _, arg = str(cfg.compress.teacher).partition(":")
    factory = TEACHERS.get(name)
    teacher = factory(
        cfg, arg, space=space, space_cfg=space_cfg, splits=splits, cache_dir=cache_dir
    )
    if isinstance(teacher, LargestTeacher):
        teacher.device, teacher.precision = device, precision
    return teacher
