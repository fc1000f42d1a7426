"""What the benchmarks are judged against: the project's goals, in one place."""

from __future__ import annotations

# What the benchmarks are judged against. These are goals set for the project (and
# Deep Compression's published LeNet ratio), not measurements, so they live here and
# not in a JSON; results.md prints each one next to the figure it judges.
TARGETS: dict[str, float] = {
    "deep_compression_ratio": 40.0,
    "pruned_speedup": 1.3,
    "int8_speedup_resnet18": 2.0,
    "int8_speedup_mobilenetv3": 1.0,
    "host_within_10pct": 0.9,
    "calibration_rho": 0.9,
    "joint_vs_random": 1.1,
    "lenet5_ratio": 100.0,
    "local_overhead": 0.05,
    "ray_overhead": 0.10,
    "parallel_speedup": 1.7,
    "parallel_speedup_limit": 2.0,
    "significance": 0.05,
    # strategy=supernet (issue 14)
    "supernet_kendall_tau": 0.6,
    "supernet_score_median_s": 0.5,
    "supernet_vs_joint_hypervolume": 1.1,  # issue 24 (issue 14 asked 1.2)
    "supernet_candidates_scored": 1000,
    # an adaptive package of operating points (issue 25)
    "adaptive_package_ratio": 1.3,  # at most: the package over its largest point's artifact
    "adaptive_hv_ratio": 0.9,  # at least: the points' hypervolume over the front's
    "adaptive_switch_ms": 50.0,  # under: the median switch, on the CPU
    "adaptive_images_off": 1,  # at most: each point's val accuracy against the estimate
    # GPU over 2 CPU cores, on one H200 (docs/cluster.md#gpus)
    "gpu_train_speedup": 20.0,  # at least: the largest candidate's and a supernet step's
    "gpu_trials_per_minute_speedup": 3.0,  # at least: the default search's trials per minute
}
