"""End-to-end runs built from the programs: file-level persona inference, judging, the demo."""

from personae.pipelines.demo import DemoUser, demo_data_path, run_demo
from personae.pipelines.fit import FitReport, fit_users
from personae.pipelines.infer import InferReport, infer_personas, progress_path
from personae.pipelines.judge import JudgeReport, judge_records

__all__ = [
    "DemoUser",
    "FitReport",
    "InferReport",
    "JudgeReport",
    "demo_data_path",
    "fit_users",
    "infer_personas",
    "judge_records",
    "progress_path",
    "run_demo",
]
