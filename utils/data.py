"""GSM8K, ready for GRPO: question, worked solution, gold answer, and a chat ``prompt`` column.

Loading order: an explicit local ``path``; else the Hugging Face Hub (``openai/gsm8k``, config
``main``) when it is reachable; else the copy shipped inside this package (both splits, gzip).
Tests and CI set ``HF_HUB_OFFLINE=1`` and so always use the shipped copy.
"""

from __future__ import annotations

import gzip
import json
import os
from importlib import resources
from pathlib import Path

from datasets import Dataset

from utils.prompts import SYSTEM_PROMPT, build_messages

SPLITS = ("train", "test")
HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"


def parse_gold(solution: str) -> str:
    """The gold final answer of a GSM8K solution: the text after the last ``####``, commas removed.

    ``"... so 1,450,000 in total.\\n#### 1,450,000"`` -> ``"1450000"``.
    """
    if not isinstance(solution, str) or "####" not in solution:
        raise ValueError(f"a GSM8K solution ends with '#### <answer>'; got {str(solution)[-80:]!r}")
    gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise ValueError(f"empty gold answer after '####' in {solution[-80:]!r}")
    return gold


def shipped_path(split: str) -> Path:
    """Path of the compressed copy of a split that ships inside the package."""
    _check_split(split)
    return Path(str(resources.files("utils") / "data" / f"gsm8k_{split}.jsonl.gz"))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a GSM8K JSONL file (plain or .gz), each with ``question`` and ``answer``.

    A missing or malformed file is an error that names the file, the line and how to fix it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"GSM8K file not found: {path}. Reinstall the course package (pip install -e .) to "
            "restore the shipped copy, or pass path= to a JSONL file from "
            "https://github.com/openai/grade-school-math (grade_school_math/data)."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
                if not isinstance(row, dict) or not {"question", "answer"} <= row.keys():
                    raise ValueError(
                        f"{path}, line {number}: a GSM8K row needs 'question' and 'answer' keys"
                    )
                rows.append(row)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as GSM8K JSONL ({error})") from None
    if not rows:
        raise ValueError(f"{path}: no GSM8K rows in the file")
    return rows


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"GSM8K split must be one of {SPLITS}; got {split!r}")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _rows_from_hub(split: str) -> list[dict] | None:
    """Rows from the Hub, or None when offline or unreachable (the caller falls back)."""
    if _hub_offline():
        return None
    try:
        from datasets import load_dataset

        hub = load_dataset(HUB_ID, HUB_CONFIG, split=split)
    except Exception as error:  # noqa: BLE001  (network, auth or Hub layout: fall back, say why)
        print(f"GSM8K: Hub not reachable ({type(error).__name__}); using the shipped copy.")
        return None
    return [{"question": q, "answer": a} for q, a in zip(hub["question"], hub["answer"])]


def load_gsm8k(
    split: str = "train",
    n: int | None = None,
    seed: int = 42,
    path: str | os.PathLike | None = None,
    system_prompt: str = SYSTEM_PROMPT,
) -> Dataset:
    """GSM8K as a ``datasets.Dataset`` with columns question, solution, answer, prompt.

    - ``answer`` is the gold final answer as a string without commas (``"1450000"``); TRL passes
      it to reward functions as the ``answer`` keyword.
    - ``prompt`` is a conversational prompt (system + user messages) for TRL.
    - ``n`` takes a random subset of that size, reproducible through ``seed``.
    """
    _check_split(split)
    if path is not None:
        rows, source = read_jsonl(path), str(path)
    else:
        rows = _rows_from_hub(split)
        source = f"hub:{HUB_ID}"
        if rows is None:
            rows, source = read_jsonl(shipped_path(split)), "shipped copy"
    records = {
        "question": [r["question"] for r in rows],
        "solution": [r["answer"] for r in rows],
        "answer": [parse_gold(r["answer"]) for r in rows],
        "prompt": [build_messages(r["question"], system_prompt) for r in rows],
    }
    dataset = Dataset.from_dict(records)
    if n is not None:
        if n <= 0:
            raise ValueError(f"n must be positive; got {n}")
        dataset = dataset.shuffle(seed=seed).select(range(min(n, len(dataset))))
    dataset.info.description = f"GSM8K {split} ({source})"
    return dataset
