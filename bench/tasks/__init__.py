"""Machine-vision tasks that score reconstructions; found through ``bench.tasks`` entry points."""

from bench.tasks.base import PredictionSettings, Task, TaskError

__all__ = ["PredictionSettings", "Task", "TaskError"]
