"""The GSM8K evaluation harness: generate, grade, summarise, compare, plot.

Why a harness and not a loop in a notebook:

- **Resumable.** Rows are streamed to ``samples.jsonl`` one chunk of questions at a time; a rerun
  with the same settings skips finished chunks and reproduces the rest exactly (each chunk is
  seeded by its position), so an interrupted Colab session loses at most one chunk.
- **Graded twice.** *Strict*: the number inside ``<answer>`` tags is right (what a pipeline that
  parses the tags sees). *Lenient*: :func:`utils.rewards.is_correct`, the final answer wherever it
  is stated (tags, ``\\boxed{}``, ``#### N``, "the answer is N"). The gap is format, not maths.
- **With error bars.** Wilson intervals for every accuracy and a paired test between runs
  (:mod:`utils.stats`): on 1319 questions a 2-point gain can be noise or real; the paired test says.

Generation: Hugging Face (:func:`utils.generation.generate`) on CPU and for small runs; vLLM on the
GPU path with the LoRA adapter served through vLLM's LoRA support.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.generation import Completion, Prompt
from utils.grader.baselines import last_number_correct, strict_regex_correct
from utils.rewards import (
    extract_final_answer,
    is_correct,
    parse_number,
    soft_format_reward,
    strict_format_reward,
)
from utils.stats import majority_vote, mcnemar_exact, paired_bootstrap, pass_at_k, wilson_interval

SAMPLES_FILE, SUMMARY_FILE, CONFIG_FILE = "samples.jsonl", "summary.json", "config.json"

# Per mode: how many test questions, how long an answer may be, how many prompts per batch.
# cpu: SmolLM2-135M answers 64 questions in about 10 minutes on 2 laptop cores.
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpu": {"n_questions": None, "max_new_tokens": 1024, "batch_size": 256},
    "cpu": {"n_questions": 64, "max_new_tokens": 256, "batch_size": 16},
    "smoke": {"n_questions": 4, "max_new_tokens": 24, "batch_size": 4},
}
DEFAULT_SAMPLED_TEMPERATURE = 0.8

# How a sample failed the strict grade; every sample is exactly one of these.
CATEGORIES = {
    "correct": "the right number inside <answer> tags",
    "format_failure": "the right number, but not inside <answer> tags",
    "no_answer": "no single final answer could be read (missing, hedged, conflicting, cut off)",
    "wrong_number": "a final answer was read and it is wrong",
}


# ------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class EvalConfig:
    """Everything that determines the samples of a run; a resumed run must match it exactly
    (and so must the adapter's weights, see :func:`adapter_fingerprint`)."""

    mode: str
    model: str | None = None
    adapter: str | None = None
    split: str = "test"
    n_questions: int | None = None
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1; got {self.samples}")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("greedy decoding gives identical samples: with samples > 1 set "
                             "a temperature > 0 (e.g. 0.8)")
        if self.n_questions is not None and self.n_questions < 1:
            raise ValueError(f"n_questions must be positive; got {self.n_questions}")


def make_config(mode: str, samples: int = 1, temperature: float | None = None,
                **overrides: Any) -> EvalConfig:
    """An :class:`EvalConfig` with the mode's defaults; ``None`` overrides keep the default.

    The temperature defaults to 0 (greedy) for one sample and to 0.8 for several.
    """
    settings = dict(MODE_DEFAULTS[mode])
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if temperature is None:
        temperature = 0.0 if samples == 1 else DEFAULT_SAMPLED_TEMPERATURE
    return EvalConfig(mode=mode, samples=samples, temperature=temperature, **settings)


# ------------------------------------------------------------------------------- questions
@dataclass(frozen=True)
class Question:
    """One test question; ``id`` is its index in the full split, so runs can be paired."""

    id: int
    question: str
    gold: str
    prompt: list[dict[str, str]]


def select_questions(split: str = "test", n_questions: int | None = None,
                     seed: int = 0) -> list[Question]:
    """The whole split in order, or a seeded random subset of ``n_questions`` (sorted by id).

    A random subset rather than the first N: GSM8K files are not shuffled by difficulty, but a
    random subset is representative by construction. The same seed gives the same questions.
    """
    from utils.data import load_gsm8k

    data = load_gsm8k(split)
    ids = list(range(len(data)))
    if n_questions is not None and n_questions < len(ids):
        ids = sorted(np.random.default_rng(seed).permutation(len(ids))[:n_questions].tolist())
    rows = data.select(ids)
    return [Question(i, q, a, p) for i, q, a, p in
            zip(ids, rows["question"], rows["answer"], rows["prompt"], strict=True)]


# ------------------------------------------------------------------------------- grading
_ANSWER_BLOCK_RE = re.compile(r"<answer>.*?</answer>", re.DOTALL)


def grade(text: str, gold: str, finished: bool = True,
          question: str | None = None) -> dict[str, Any]:
    """The grades of one completion: extracted answer, lenient and strict correctness, format.

    Lenient reads the final answer wherever the grading policy of :mod:`utils.rewards` finds it
    (a revised ``\\boxed{}`` after a wrong tag counts). Strict asks more: the last closed
    ``<answer>`` block, read on its own, holds the gold. So strict is a subset of lenient. With
    the ``question`` the policy's unit rules apply ("how many minutes", a percent for money).
    """
    extracted = extract_final_answer(text, question=question)
    lenient = is_correct(text, gold, question=question)
    blocks = _ANSWER_BLOCK_RE.findall(text)
    strict = lenient and bool(blocks) and is_correct(blocks[-1], gold, question=question)
    if strict:
        category = "correct"
    elif lenient:
        category = "format_failure"
    elif extracted is None:
        category = "no_answer"
    else:
        category = "wrong_number"
    return {
        "extracted": extracted,
        "correct_lenient": lenient,
        "correct_strict": strict,
        "format_ok": soft_format_reward([text])[0] == 1.0,
        "strict_format_ok": strict_format_reward([text])[0] == 1.0,
        "truncated": not finished,
        "category": category,
    }


def sample_rows(question: Question, completions: Sequence[Completion]) -> list[dict[str, Any]]:
    """One JSONL row per completion of a question, graded."""
    return [
        {"id": question.id, "sample": j, "question": question.question, "gold": question.gold,
         "completion": c.text, "num_tokens": c.num_tokens, "finished": c.finished,
         **grade(c.text, question.gold, c.finished, question.question)}
        for j, c in enumerate(completions)
    ]


# ------------------------------------------------------------------------------- generation
# A generator maps (prompts, seed) to `samples` completions per prompt, in prompt order.
Generator = Callable[[list[Prompt], int], list[list[Completion]]]


def hf_generator(model, tokenizer, config: EvalConfig, progress: bool = False) -> Generator:
    """Batched, left-padded Hugging Face generation with the run's sampling settings."""
    from utils.generation import generate

    def run(prompts: list[Prompt], seed: int) -> list[list[Completion]]:
        return generate(model, tokenizer, prompts, n=config.samples,
                        max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                        top_p=config.top_p, batch_size=config.batch_size, seed=seed,
                        progress=progress)

    return run


VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def load_vllm(model: str | None = None, max_lora_rank: int | None = None,
              max_model_len: int = 2048, gpu_memory_utilization: float = 0.85, seed: int = 0):
    """A vLLM engine for the 16-bit base model, with LoRA serving on when ``max_lora_rank`` is set.

    One engine serves both the base model (no LoRA request) and the adapter (a LoRA request), so a
    notebook compares them without loading the 3B weights twice. The adapter was trained on the
    4-bit base and is served here on the 16-bit one: a small shift in accuracy is expected, not
    measured in this repository (notebook 05 says how to check it on a run).
    """
    from vllm import LLM

    from utils.models import DEFAULT_MODELS
    from utils.runtime import supports_bf16

    lora = {}
    if max_lora_rank is not None:
        rank = next((r for r in VLLM_LORA_RANKS if r >= max_lora_rank), VLLM_LORA_RANKS[-1])
        lora = {"enable_lora": True, "max_lora_rank": rank, "max_loras": 1}
    return LLM(model=model or DEFAULT_MODELS["gpu"], dtype="auto" if supports_bf16() else "half",
               max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
               seed=seed, **lora)


def adapter_rank(adapter: str | Path) -> int:
    """The LoRA rank ``r`` recorded in an adapter directory (vLLM must reserve at least that)."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(f"no LoRA adapter in {adapter} (adapter_config.json missing)")
    return int(json.loads(config.read_text())["r"])


def shared_vllm(mode: str, adapter: str | Path | None = None):
    """One vLLM engine for a notebook's base and adapter runs, or None where there is none.

    Only ``gpu`` mode on a GPU that :func:`utils.models.vllm_status` allows gets one (sized for
    the adapter's LoRA rank); elsewhere each run uses Hugging Face generate, as
    :func:`make_generator` decides. Loading the 3B weights once saves minutes per run.
    """
    if mode != "gpu":
        return None
    from utils.models import vllm_status

    if not vllm_status()[0]:
        return None
    return load_vllm(max_lora_rank=adapter_rank(adapter) if adapter else None,
                     max_model_len=MODE_DEFAULTS["gpu"]["max_new_tokens"] + 1024)


def vllm_generator(llm, config: EvalConfig) -> Generator:
    """vLLM generation: chat prompts rendered with the model's template, the adapter as a LoRA
    request, and one seed per question (``seed + position``) so chunking never changes a sample."""
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    tokenizer = llm.get_tokenizer()
    lora = LoRARequest("adapter", 1, str(config.adapter)) if config.adapter else None

    def run(prompts: list[Prompt], seed: int) -> list[list[Completion]]:
        texts = [p if isinstance(p, str) else tokenizer.apply_chat_template(
            list(p), tokenize=False, add_generation_prompt=True) for p in prompts]
        params = [SamplingParams(n=config.samples, temperature=config.temperature,
                                 top_p=config.top_p, max_tokens=config.max_new_tokens,
                                 seed=seed + i) for i in range(len(texts))]
        outputs = llm.generate(texts, params, lora_request=lora, use_tqdm=False)
        return [[Completion(o.text, len(o.token_ids), o.finish_reason == "stop")
                 for o in output.outputs] for output in outputs]

    return run


def make_generator(config: EvalConfig, llm=None, progress: bool = False) -> tuple[Generator, str]:
    """The generator for a run and the name of its backend (``"vllm"`` or ``"hf"``).

    gpu mode uses vLLM when :func:`utils.models.vllm_status` allows it (``llm`` reuses an engine
    from :func:`load_vllm`); everything else, and gpu without vLLM, uses Hugging Face generate.
    """
    if config.mode == "gpu":
        from utils.models import vllm_status

        available, why = vllm_status()
        if available:
            if llm is None:
                rank = adapter_rank(config.adapter) if config.adapter else None
                llm = load_vllm(config.model, max_lora_rank=rank,
                                max_model_len=config.max_new_tokens + 1024, seed=config.seed)
            return vllm_generator(llm, config), "vllm"
        print(f"vLLM not used ({why}); falling back to Hugging Face generate (slower).")
    from utils.models import load_for_inference

    model, tokenizer = load_for_inference(config.mode, model_name=config.model,
                                          adapter=config.adapter)
    return hf_generator(model, tokenizer, config, progress=progress), "hf"


# ------------------------------------------------------------------------------- running
def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``samples.jsonl`` (a run directory or the file); a torn last line is dropped."""
    path = Path(path)
    if path.is_dir():
        path = path / SAMPLES_FILE
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # an interrupted write: everything after it is regenerated on resume
    return rows


def adapter_fingerprint(adapter: str | Path | None) -> str | None:
    """A short hash of an adapter's weight files: retraining into the same directory changes it,
    so a stale run is never resumed as if it belonged to the new adapter."""
    if adapter is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(Path(adapter).glob("adapter_model.*")):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _run_settings(config: EvalConfig) -> dict[str, Any]:
    return {**asdict(config), "adapter_fingerprint": adapter_fingerprint(config.adapter)}


def _check_resume(output_dir: Path, settings: dict[str, Any],
                  overwrite: bool) -> list[dict[str, Any]]:
    """Rows already written with the same settings; an error for different ones."""
    config_path, samples_path = output_dir / CONFIG_FILE, output_dir / SAMPLES_FILE
    if overwrite:
        samples_path.unlink(missing_ok=True)
        config_path.unlink(missing_ok=True)
    if not config_path.is_file():
        samples_path.unlink(missing_ok=True)
        return []
    saved = json.loads(config_path.read_text())
    if saved != settings:
        changed = sorted(k for k in saved.keys() | settings.keys()
                         if saved.get(k) != settings.get(k))
        raise ValueError(f"{output_dir} holds a run with different settings ({', '.join(changed)})"
                         ": use another --output-dir, or overwrite=True to start again")
    return read_samples(samples_path) if samples_path.is_file() else []


def run_evaluation(config: EvalConfig, output_dir: str | Path, generator: Generator | None = None,
                   questions: Sequence[Question] | None = None, overwrite: bool = False,
                   progress: bool = True, llm=None) -> dict[str, Any]:
    """Generate, grade and stream a run to ``output_dir``; return (and write) its summary.

    Questions are processed in chunks of ``batch_size``; chunk ``c`` is seeded ``seed + start``
    where ``start`` is its first position. A rerun with the same config resumes: finished chunks
    are kept, an incomplete one is regenerated, so the result equals an uninterrupted run.
    ``generator`` replaces model loading (tests pass a fake one).
    """
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    questions = list(questions) if questions is not None else select_questions(
        config.split, config.n_questions, config.seed)
    settings = _run_settings(config)
    kept = _check_resume(output_dir, settings, overwrite)
    (output_dir / CONFIG_FILE).write_text(json.dumps(settings, indent=2))
    chunks = [questions[s:s + config.batch_size] for s in range(0, len(questions),
                                                                  config.batch_size)]
    counts: dict[int, int] = {}
    for row in kept:
        counts[row["id"]] = counts.get(row["id"], 0) + 1
    done = {i for i, chunk in enumerate(chunks)
            if all(counts.get(q.id, 0) == config.samples for q in chunk)}
    done_ids = {q.id for i in done for q in chunks[i]}
    rows = [row for row in kept if row["id"] in done_ids]
    # Keep only complete chunks (a torn or partial tail is dropped); write-then-rename, so that
    # an interruption right now cannot lose the rows already saved.
    partial = output_dir / (SAMPLES_FILE + ".partial")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    partial.replace(output_dir / SAMPLES_FILE)
    backend = "none (all chunks resumed)"
    with open(output_dir / SAMPLES_FILE, "a", encoding="utf-8") as handle:
        todo = [i for i in range(len(chunks)) if i not in done]
        if todo and generator is None:
            generator, backend = make_generator(config, llm=llm)
        elif todo:
            backend = "custom"
        bar = tqdm(total=len(questions), initial=len(done_ids), desc="evaluating",
                   unit="question", disable=not progress)
        for i in todo:
            chunk = chunks[i]
            completions = generator([q.prompt for q in chunk], config.seed + i * config.batch_size)
            for question, outs in zip(chunk, completions, strict=True):
                new = sample_rows(question, outs)
                rows.extend(new)
                handle.writelines(json.dumps(row) + "\n" for row in new)
            handle.flush()
            bar.update(len(chunk))
        bar.close()
    summary = summarize(rows)
    summary["config"] = settings
    summary["backend"] = backend
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


# ------------------------------------------------------------------------------- metrics
def group_by_question(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Rows grouped by question id (in first-seen order), samples sorted by index."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["id"], []).append(row)
    return {i: sorted(group, key=lambda r: r["sample"]) for i, group in groups.items()}


def _same_value(answer: str | None, gold: str) -> bool:
    value = parse_number(answer) if answer is not None else None
    return value is not None and value == parse_number(gold)


def _interval(successes: float, n: int) -> list[float]:
    return [round(x, 4) for x in wilson_interval(successes, n)]


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of a run: accuracies with Wilson intervals, format, truncation, lengths,
    error counts; with k > 1 samples also maj@k and pass@k.

    With k samples, ``accuracy_*`` is the mean over all samples (an estimate of pass@1), and its
    interval treats each *question* as one trial: samples of one question are correlated, so
    counting all n*k as independent would give falsely narrow intervals.
    """
    groups = group_by_question(rows)
    if not groups:
        raise ValueError("no samples to summarise")
    sizes = {len(group) for group in groups.values()}
    if len(sizes) != 1:
        raise ValueError(f"questions have different numbers of samples: {sorted(sizes)}")
    k, n = sizes.pop(), len(groups)
    per_question = {
        key: [statistics.fmean(r[key] for r in group) for group in groups.values()]
        for key in ("correct_strict", "correct_lenient")
    }
    lengths = [r["num_tokens"] for r in rows]
    summary: dict[str, Any] = {
        "n_questions": n,
        "samples_per_question": k,
        "accuracy_strict": statistics.fmean(per_question["correct_strict"]),
        "accuracy_lenient": statistics.fmean(per_question["correct_lenient"]),
        "format_rate": statistics.fmean(r["format_ok"] for r in rows),
        "strict_format_rate": statistics.fmean(r["strict_format_ok"] for r in rows),
        "truncation_rate": statistics.fmean(r["truncated"] for r in rows),
        "length_mean": statistics.fmean(lengths),
        "length_median": statistics.median(lengths),
        "errors": {name: sum(r["category"] == name for r in rows) for name in CATEGORIES},
    }
    summary["ci95"] = {"accuracy_strict": _interval(sum(per_question["correct_strict"]), n),
                       "accuracy_lenient": _interval(sum(per_question["correct_lenient"]), n)}
    if k > 1:
        votes = [majority_vote([r["extracted"] for r in group]) for group in groups.values()]
        maj = [_same_value(vote, group[0]["gold"]) for vote, group in zip(votes, groups.values())]
        correct = [sum(r["correct_lenient"] for r in group) for group in groups.values()]
        curve = {str(j): statistics.fmean(pass_at_k(k, c, j) for c in correct)
                 for j in _powers_of_two_up_to(k)}
        summary.update(k=k, maj_at_k=statistics.fmean(maj), pass_at_k=curve[str(k)],
                       pass_at_k_curve=curve)
        summary["ci95"]["maj_at_k"] = _interval(sum(maj), n)
        summary["ci95"]["pass_at_k"] = _interval(curve[str(k)] * n, n)
    return summary


def _powers_of_two_up_to(k: int) -> list[int]:
    powers = [2**i for i in range(int(math.log2(k)) + 1)]
    return powers if powers[-1] == k else powers + [k]


def per_question_scores(rows: Sequence[dict[str, Any]], metric: str) -> dict[int, float]:
    """Per question id, the mean of a boolean row field (0/1 for a greedy run)."""
    return {i: statistics.fmean(r[metric] for r in group)
            for i, group in group_by_question(rows).items()}


def compare_runs(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]],
                 metric: str = "correct_strict", seed: int = 0) -> dict[str, Any]:
    """Paired comparison of two runs on their common questions: B - A with a bootstrap 95%
    interval, and McNemar's exact test when both runs have one sample per question.

    Questions are matched by id and must have the same text (else the runs are not paired).
    """
    a, b = per_question_scores(rows_a, metric), per_question_scores(rows_b, metric)
    texts_a = {r["id"]: r["question"] for r in rows_a}
    texts_b = {r["id"]: r["question"] for r in rows_b}
    common = sorted(a.keys() & b.keys())
    if not common:
        raise ValueError("the two runs share no questions: they cannot be compared pairwise")
    if any(texts_a[i] != texts_b[i] for i in common):
        raise ValueError("the runs use different questions under the same ids (another split?)")
    scores_a, scores_b = [a[i] for i in common], [b[i] for i in common]
    boot = paired_bootstrap(scores_a, scores_b, seed=seed)
    result: dict[str, Any] = {
        "metric": metric, "n_questions": len(common),
        "accuracy_a": statistics.fmean(scores_a), "accuracy_b": statistics.fmean(scores_b),
        "difference": boot.difference, "difference_ci95": [boot.low, boot.high],
        "mcnemar": None,
    }
    binary = all(s in (0.0, 1.0) for s in scores_a + scores_b) and _single_sample(rows_a, rows_b)
    if binary:
        test = mcnemar_exact([s == 1.0 for s in scores_a], [s == 1.0 for s in scores_b])
        result["mcnemar"] = asdict(test)
    return result


def _single_sample(*runs: Sequence[dict[str, Any]]) -> bool:
    return all(all(r["sample"] == 0 for r in rows) for rows in runs)


def format_comparison(result: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """A few lines of plain text for a :func:`compare_runs` result."""
    low, high = result["difference_ci95"]
    lines = [
        f"paired comparison on {result['n_questions']} questions ({result['metric']})",
        f"  {name_a}: {result['accuracy_a']:.1%}   {name_b}: {result['accuracy_b']:.1%}",
        (f"  {name_b} - {name_a}: {result['difference']:+.1%}  "
         f"(95% paired bootstrap interval {low:+.1%} to {high:+.1%})"),
    ]
    test = result["mcnemar"]
    if test is not None:
        lines.append(f"  McNemar exact: {test['only_a']} questions only {name_a} got right, "
                     f"{test['only_b']} only {name_b}; p = {test['p_value']:.3g}")
    else:
        lines.append("  McNemar: not applicable (several samples per question)")
    verdict = "significant" if low > 0 or high < 0 else "not significant"
    lines.append(f"  verdict at 95%: the difference is {verdict}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- error analysis
def error_table(rows: Sequence[dict[str, Any]], examples: int = 1, width: int = 160):
    """A pandas table: per category, count, share, truncated count and example completions."""
    import pandas as pd

    table = []
    for name, meaning in CATEGORIES.items():
        members = [r for r in rows if r["category"] == name]
        shown = [f"[gold {r['gold']}, read {r['extracted']}] " + _shorten(r["completion"], width)
                 for r in members[:examples]]
        table.append({"category": name, "meaning": meaning, "count": len(members),
                      "share": len(members) / len(rows) if rows else 0.0,
                      "truncated": sum(r["truncated"] for r in members),
                      "examples": " | ".join(shown)})
    return pd.DataFrame(table).set_index("category")


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width // 2] + " ... " + flat[-width // 2:]


# ------------------------------------------------------------------------------- parsers
PARSERS: dict[str, Callable[[str, str], bool]] = {
    "strict regex (tags, string match)": strict_regex_correct,
    "flexible last number": last_number_correct,
    "ours, strict (utils.rewards + tags)": lambda text, gold: grade(text, gold)["correct_strict"],
    "ours, lenient (utils.rewards.is_correct)": is_correct,
}


def parser_comparison(runs: dict[str, Sequence[dict[str, Any]]]):
    """Accuracy of the same completions under each parser: one row per parser, one column per run.

    The spread of a column is how much of a reported number is the grader, not the model.
    """
    import pandas as pd

    return pd.DataFrame({
        run: {name: statistics.fmean(parse(r["completion"], r["gold"]) for r in rows)
              for name, parse in PARSERS.items()}
        for run, rows in runs.items()
    })


def parser_disagreements(rows: Sequence[dict[str, Any]], limit: int = 5) -> list[dict[str, Any]]:
    """Completions on which the parsers disagree, with each parser's verdict."""
    found = []
    for row in rows:
        verdicts = {name: bool(parse(row["completion"], row["gold"]))
                    for name, parse in PARSERS.items()}
        if len(set(verdicts.values())) > 1:
            found.append({"gold": row["gold"], "completion": row["completion"], **verdicts})
            if len(found) == limit:
                break
    return found


# ------------------------------------------------------------------------------- plots
def plot_accuracy(summaries: dict[str, dict[str, Any]]):
    """Bars per run for strict and lenient accuracy (and maj@k, pass@k), Wilson 95% error bars."""
    import matplotlib.pyplot as plt

    metrics = [m for m in ("accuracy_strict", "accuracy_lenient", "maj_at_k", "pass_at_k")
               if any(m in s for s in summaries.values())]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics) * len(summaries) / 2, 3.6))
    width = 0.8 / len(summaries)
    for j, (name, summary) in enumerate(summaries.items()):
        xs, values, errors = [], [], [[], []]
        for i, metric in enumerate(metrics):
            if metric not in summary:
                continue
            value, (low, high) = summary[metric], summary["ci95"][metric]
            xs.append(i + (j - (len(summaries) - 1) / 2) * width)
            values.append(value)
            errors[0].append(max(0.0, value - low))
            errors[1].append(max(0.0, high - value))
        ax.bar(xs, values, width, yerr=errors, capsize=4, label=name)
    ax.set_xticks(range(len(metrics)), [m.replace("_", " ") for m in metrics])
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of questions")
    ax.set_title("GSM8K accuracy (bars: Wilson 95% intervals)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_lengths(runs: dict[str, Sequence[dict[str, Any]]], bins: int = 30):
    """Histograms of completion length in tokens, one per run, on shared bins."""
    import matplotlib.pyplot as plt

    lengths = {name: [r["num_tokens"] for r in rows] for name, rows in runs.items()}
    top = max(max(values) for values in lengths.values())
    edges = np.linspace(0, max(top, 1), bins + 1)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, values in lengths.items():
        ax.hist(values, bins=edges, alpha=0.55, label=f"{name} (median {np.median(values):.0f})")
    ax.set_xlabel("completion length (tokens)")
    ax.set_ylabel("samples")
    ax.set_title("Completion lengths")
    ax.legend()
    fig.tight_layout()
    return fig


def accuracy_by_length(rows: Sequence[dict[str, Any]], bins: int = 5,
                       metric: str = "correct_strict") -> list[dict[str, Any]]:
    """Accuracy within length quantile bins: ``[{low, high, n, accuracy}, ...]``.

    Quantile bins hold equal numbers of samples, so every point has a comparable error bar. Tied
    lengths merge bins; when every completion has the same length (all cut at ``max_new_tokens``,
    as in smoke mode) that leaves one bin holding every sample, not an empty result.
    """
    if not rows:
        return []
    lengths = np.array([r["num_tokens"] for r in rows])
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    result = []
    for i, (low, high) in enumerate(itertools.pairwise(edges)):
        last = i == len(edges) - 2
        members = [r for r, length in zip(rows, lengths)
                   if low <= length < high or (last and length == high)]
        if members:
            result.append({"low": int(low), "high": int(high), "n": len(members),
                           "accuracy": statistics.fmean(r[metric] for r in members)})
    return result


def plot_accuracy_by_length(runs: dict[str, Sequence[dict[str, Any]]], bins: int = 5,
                            metric: str = "correct_strict"):
    """Accuracy per length bin for each run, with Wilson 95% intervals."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, rows in runs.items():
        points = accuracy_by_length(rows, bins, metric)
        centres = [(p["low"] + p["high"]) / 2 for p in points]
        values = [p["accuracy"] for p in points]
        intervals = [wilson_interval(p["accuracy"] * p["n"], p["n"]) for p in points]
        errors = [[v - lo for v, (lo, _) in zip(values, intervals)],
                  [hi - v for v, (_, hi) in zip(values, intervals)]]
        ax.errorbar(centres, values, yerr=errors, marker="o", capsize=3, label=name)
    ax.set_ylim(0, 1)
    ax.set_xlabel("completion length (tokens, bin centre)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("Accuracy by completion length")
    ax.legend()
    fig.tight_layout()
    return fig


@dataclass
class Run:
    """A finished run read back from its directory: rows, summary and config."""

    directory: Path
    rows: list[dict[str, Any]] = field(repr=False)
    summary: dict[str, Any] = field(repr=False)


def load_run(directory: str | Path) -> Run:
    """An evaluation run (``samples.jsonl`` and ``summary.json``) as a :class:`Run`; a training
    run's log history is :func:`utils.health.load_log_history`."""
    directory = Path(directory)
    summary_path = directory / SUMMARY_FILE
    if not summary_path.is_file():
        raise FileNotFoundError(f"no {SUMMARY_FILE} in {directory}: run `python -m utils.evaluate "
                                f"--output-dir {directory}` first")
    return Run(directory, read_samples(directory), json.loads(summary_path.read_text()))
