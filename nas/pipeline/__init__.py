"""One candidate's path: data, the one training recipe, the candidate, the search
strategy that scores it, the artifact evaluator and the distillation teacher.

Knows nothing of Optuna studies, MLflow or runners: a trial's result is a
:class:`TrialResult` that ``nas.study`` records. Names load lazily (torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.pipeline._candidate import (
        AIMED_DEVICE,
        ANY_DEVICE,
        any_device_constraint,
        build_candidate,
        candidate_meta,
        compression_configs,
        hw_constraints,
        infeasible_result,
        propose,
        sample_compression,
        space_from_cfg,
        structural_copy,
    )
    from nas.pipeline._context import (
        Device,
        EpochJudge,
        Proposal,
        Strategy,
        TeacherSource,
        TrialContext,
        TrialResult,
        feasible_on,
    )
    from nas.pipeline._data import (
        Batches,
        DataPart,
        Splits,
        TensorPart,
        get_loader,
        list_datasets,
        load_splits,
        register_dataset,
    )
    from nas.pipeline._datasets import DATASETS
    from nas.pipeline._device import Placement, ray_gpu_ids, select_device
    from nas.pipeline._errors import NotLearning, TrainFailed, TrialStopped, TrialTimeout
    from nas.pipeline._evaluator import (
        MAX_ARTIFACT_PARAMS,
        ArtifactEvaluator,
        evaluate_artifact,
        load_artifact,
        score_artifact,
    )
    from nas.pipeline._recipe import Recipe, RecipeResult, distiller, train_compressed
    from nas.pipeline._scratch import ScratchStrategy, export_and_evaluate, train_proposal
    from nas.pipeline._strategy import STRATEGIES, evaluate_proposal, run_trial
    from nas.pipeline._stream import FolderPart, augment_batch
    from nas.pipeline._supernet import SupernetStrategy, inherit, load_supernet, recalibrate_bn
    from nas.pipeline._supernet_cache import CheckpointError
    from nas.pipeline._supernet_front import estimated_front, spread_by_size
    from nas.pipeline._supernet_predict import CandidateEncoder, FinalPredictor
    from nas.pipeline._supernet_train import SupernetRecipe, SupernetStats, train_supernet
    from nas.pipeline._teacher import (
        TEACHERS,
        LargestTeacher,
        TimmTeacher,
        make_teacher,
        teacher_epochs,
    )
    from nas.pipeline._train import (
        LossFn,
        TrainStats,
        accuracy,
        predict,
        train,
    )

_NAMES = {
    **dict.fromkeys(
        [
            "AIMED_DEVICE", "ANY_DEVICE", "any_device_constraint", "build_candidate",
            "candidate_meta",
            "compression_configs", "hw_constraints", "infeasible_result", "propose",
            "sample_compression", "space_from_cfg", "structural_copy",
        ],
        "nas.pipeline._candidate",
    ),
    **dict.fromkeys(
        ["Device", "EpochJudge", "Proposal", "Strategy", "TeacherSource", "TrialContext",
         "TrialResult", "feasible_on"],
        "nas.pipeline._context",
    ),
    **dict.fromkeys(
        ["NotLearning", "TrainFailed", "TrialStopped", "TrialTimeout"], "nas.pipeline._errors"
    ),
    **dict.fromkeys(
        ["Batches", "DataPart", "Splits", "TensorPart", "get_loader", "list_datasets",
         "load_splits", "register_dataset"],
        "nas.pipeline._data",
    ),
    **dict.fromkeys(["Placement", "ray_gpu_ids", "select_device"], "nas.pipeline._device"),
    **dict.fromkeys(["FolderPart", "augment_batch"], "nas.pipeline._stream"),
    **dict.fromkeys(
        ["MAX_ARTIFACT_PARAMS", "ArtifactEvaluator", "evaluate_artifact", "load_artifact",
         "score_artifact"],
        "nas.pipeline._evaluator",
    ),
    **dict.fromkeys(
        ["Recipe", "RecipeResult", "distiller", "train_compressed"], "nas.pipeline._recipe"
    ),
    "DATASETS": "nas.pipeline._datasets",
    **dict.fromkeys(
        ["ScratchStrategy", "export_and_evaluate", "train_proposal"], "nas.pipeline._scratch"
    ),
    **dict.fromkeys(
        ["SupernetStrategy", "inherit", "load_supernet", "recalibrate_bn"], "nas.pipeline._supernet"
    ),
    "estimated_front": "nas.pipeline._supernet_front",
    "spread_by_size": "nas.pipeline._supernet_front",
    **dict.fromkeys(["CandidateEncoder", "FinalPredictor"], "nas.pipeline._supernet_predict"),
    "CheckpointError": "nas.pipeline._supernet_cache",
    **dict.fromkeys(
        ["SupernetRecipe", "SupernetStats", "train_supernet"], "nas.pipeline._supernet_train"
    ),
    **dict.fromkeys(
        ["STRATEGIES", "evaluate_proposal", "run_trial"], "nas.pipeline._strategy"
    ),
    **dict.fromkeys(
        ["TEACHERS", "LargestTeacher", "TimmTeacher", "make_teacher", "teacher_epochs"],
        "nas.pipeline._teacher",
    ),
    **dict.fromkeys(
        ["LossFn", "TrainStats", "accuracy", "predict", "train"],
        "nas.pipeline._train",
    ),
}  # fmt: skip

__all__ = [
    "AIMED_DEVICE",
    "CandidateEncoder",
    "FinalPredictor",
    "DataPart",
    "FolderPart",
    "Placement",
    "TensorPart",
    "augment_batch",
    "ray_gpu_ids",
    "select_device",
    "ANY_DEVICE",
    "ArtifactEvaluator",
    "Batches",
    "CheckpointError",
    "DATASETS",
    "Device",
    "EpochJudge",
    "LargestTeacher",
    "LossFn",
    "MAX_ARTIFACT_PARAMS",
    "NotLearning",
    "Proposal",
    "Recipe",
    "RecipeResult",
    "STRATEGIES",
    "ScratchStrategy",
    "Splits",
    "Strategy",
    "SupernetRecipe",
    "SupernetStats",
    "SupernetStrategy",
    "TEACHERS",
    "TeacherSource",
    "TimmTeacher",
    "TrainFailed",
    "TrainStats",
    "TrialContext",
    "TrialResult",
    "TrialStopped",
    "TrialTimeout",
    "accuracy",
    "any_device_constraint",
    "build_candidate",
    "candidate_meta",
    "compression_configs",
    "distiller",
    "estimated_front",
    "export_and_evaluate",
    "feasible_on",
    "evaluate_artifact",
    "evaluate_proposal",
    "get_loader",
    "hw_constraints",
    "infeasible_result",
    "inherit",
    "load_supernet",
    "list_datasets",
    "load_artifact",
    "load_splits",
    "make_teacher",
    "predict",
    "propose",
    "recalibrate_bn",
    "register_dataset",
    "run_trial",
    "sample_compression",
    "score_artifact",
    "space_from_cfg",
    "structural_copy",
    "teacher_epochs",
    "train",
    "train_compressed",
    "train_proposal",
    "train_supernet",
    "spread_by_size",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
