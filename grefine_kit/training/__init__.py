"""Training: learning PQ-Map's quality prompts from opinion scores."""

from grefine_kit.training.prompts import TrainingReport, train_pq_prompts

__all__ = ["TrainingReport", "train_pq_prompts"]
