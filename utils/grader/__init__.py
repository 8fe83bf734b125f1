"""The grader of the accuracy reward: is a completion's final answer the gold quantity?

It follows a written policy, ``POLICY.md`` in this folder (:data:`POLICY_PATH`), the steps a
careful human grader takes: find the one final answer (:mod:`utils.grader.locate`), read its
number (:mod:`utils.grader.numerals`; words in six languages and Chinese numerals in
:mod:`utils.grader.words`, dot or apostrophe digit grouping in :mod:`utils.grader.grouping`),
compare it with the gold (:mod:`utils.grader.compare`, units in :mod:`utils.grader.units`).
:mod:`utils.grader.baselines` holds the graders it is compared with. The TRL reward functions
that use it are in :mod:`utils.rewards`.
"""

from pathlib import Path

from utils.grader.compare import is_correct
from utils.grader.locate import completion_text, extract_final_answer
from utils.grader.numerals import Quantity, parse_number, read_quantity

POLICY_PATH = Path(__file__).with_name("POLICY.md")

__all__ = ["POLICY_PATH", "Quantity", "completion_text", "extract_final_answer", "is_correct",
           "parse_number", "read_quantity"]
