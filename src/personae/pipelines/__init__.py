"""End-to-end runs built from the programs: file-level persona inference, judging, the demo."""

from personae.pipelines.demo import DemoUser, demo_data_path, run_demo
from personae.pipelines.infer import InferReport, infer_personas, progress_path
from personae.pipelines.judge import JudgeReport, judge_records

__all__ = [
    "DemoUser",
    "InferReport",
    "JudgeReport",
    "demo_data_path",
    "infer_personas",
    "judge_records",
    "progress_path",
    "run_demo",
]
