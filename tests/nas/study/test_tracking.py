"""What the tracker writes must not leak secrets from the config."""

from __future__ import annotations

from nas.study import flatten, redact_secrets


def test_passwords_in_urls_are_masked_before_logging() -> None:
    cfg = {
        "search": {"storage": "postgresql+psycopg2://bob:s3cret@10.0.0.5:5432/optuna"},
        "mlflow": {"tracking_uri": "https://alice:pw@mlflow.example:443"},
        "other": ["sqlite:////tmp/x.db", "http://127.0.0.1:5000", 3],
    }
    flat = flatten(redact_secrets(cfg))
    assert flat["search.storage"] == "postgresql+psycopg2://bob:***@10.0.0.5:5432/optuna"
    assert flat["mlflow.tracking_uri"] == "https://alice:***@mlflow.example:443"
    assert flat["other_1"] == "sqlite:////tmp/x.db"
    assert flat["other_2"] == "http://127.0.0.1:5000"
    assert "s3cret" not in str(flat) and ":pw@" not in str(flat)
