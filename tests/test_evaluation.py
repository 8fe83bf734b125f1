"""The evaluation harness: grading, metrics, resuming, pairing, parsers, plots, both backends."""

import json
import sys
import types

import matplotlib
import pytest

from utils import evaluation
from utils.evaluation import EvalConfig, Question
from utils.generation import Completion

matplotlib.use("Agg")

GOOD = "<think>\n9 eggs at $2 each.\n</think>\n<answer>\n18\n</answer>"


# ----------------------------------------------------------------------------- grading
@pytest.mark.parametrize("text,category,strict,lenient", [
    (GOOD, "correct", True, True),
    ("<answer>$18.00</answer>", "correct", True, True),
    ("She makes 9 * 2 = 18 dollars. The answer is 18.", "format_failure", False, True),
    ("\\boxed{18}", "format_failure", False, True),
    ("<think>\n9 * 2 = 18\n</think>\n<answer>\n19\n</answer>", "wrong_number", False, False),
    ("<think>\n9 * 2 = 18, so the total is", "no_answer", False, False),
    ("<answer>18 or 19</answer>", "no_answer", False, False),
    ("<answer>18</answer> \\boxed{19}", "no_answer", False, False),  # conflicting answers
    # a wrong tag revised by a later boxed answer: right, but the tag itself is wrong
    (("<think>\n9 * 2 = 17\n</think>\n<answer>\n17\n</answer>\nWait, 9 * 2 is 18, so "
      "\\boxed{18}."), "format_failure", False, True),
])
def test_grade_categories(text, category, strict, lenient):
    graded = evaluation.grade(text, "18")
    assert graded["category"] == category
    assert (graded["correct_strict"], graded["correct_lenient"]) == (strict, lenient)


def test_grade_uses_the_question_for_units():
    question = "A book costs $16 and a pen $2. How many dollars do both cost?"
    assert evaluation.grade("<answer>18</answer>", "18", question=question)["correct_strict"]
    percent = evaluation.grade("<answer>18%</answer>", "18", question=question)
    assert not percent["correct_lenient"] and not percent["correct_strict"]
    assert evaluation.grade("<answer>18%</answer>", "18")["correct_lenient"]  # no question


def test_grade_format_and_truncation_flags():
    assert evaluation.grade(GOOD, "18")["strict_format_ok"]
    loose = evaluation.grade("<think>x</think> <answer>18</answer>", "18")
    assert loose["format_ok"] and not loose["strict_format_ok"]
    cut = evaluation.grade("<think>\n9 * 2", "18", finished=False)
    assert cut["truncated"] and not cut["format_ok"] and cut["extracted"] is None


# ----------------------------------------------------------------------------- metrics
def make_rows(outcomes, gold="18"):
    """Rows from ``{question id: [completion texts]}``, graded by the real grader."""
    rows = []
    for qid, texts in outcomes.items():
        question = Question(qid, f"question {qid}", gold, [])
        rows.extend(evaluation.sample_rows(
            question, [Completion(t, len(t), not t.endswith("...")) for t in texts]))
    return rows


def test_summary_of_a_greedy_run():
    rows = make_rows({0: [GOOD], 1: ["The answer is 18."], 2: ["<answer>7</answer>"],
                      3: ["I think..."]})
    summary = evaluation.summarize(rows)
    assert summary["n_questions"] == 4 and summary["samples_per_question"] == 1
    assert summary["accuracy_strict"] == 0.25 and summary["accuracy_lenient"] == 0.5
    assert summary["format_rate"] == 0.25 and summary["truncation_rate"] == 0.25
    assert summary["errors"] == {"correct": 1, "format_failure": 1, "no_answer": 1,
                                 "wrong_number": 1}
    low, high = summary["ci95"]["accuracy_strict"]
    assert low < 0.25 < high
    assert "maj_at_k" not in summary
    lengths = sorted(len(r["completion"]) for r in rows)
    assert summary["length_median"] == (lengths[1] + lengths[2]) / 2


def test_summary_of_a_sampled_run_has_maj_and_pass_at_k():
    wrong, right = "<answer>7</answer>", "<answer>18</answer>"
    rows = make_rows({
        0: [right, wrong, "<answer>18.0</answer>", wrong],  # 2 of 4; tie 18 vs 7: 18 seen first
        1: [wrong, wrong, wrong, right],                    # 1 of 4; majority wrong
        2: [wrong] * 4,                                     # 0 of 4
    })
    summary = evaluation.summarize(rows)
    assert summary["k"] == 4
    assert summary["accuracy_lenient"] == pytest.approx((2 + 1 + 0) / 12)
    assert summary["maj_at_k"] == pytest.approx(1 / 3)
    assert summary["pass_at_k"] == pytest.approx(2 / 3)
    assert summary["pass_at_k_curve"]["1"] == pytest.approx(summary["accuracy_lenient"])
    assert summary["pass_at_k_curve"]["2"] == pytest.approx((5 / 6 + 1 / 2 + 0) / 3)
    assert set(summary["ci95"]) == {"accuracy_strict", "accuracy_lenient", "maj_at_k",
                                    "pass_at_k"}


def test_summary_rejects_uneven_sample_counts():
    rows = make_rows({0: [GOOD, GOOD], 1: [GOOD]})
    with pytest.raises(ValueError, match="different numbers of samples"):
        evaluation.summarize(rows)


# ----------------------------------------------------------------------------- running, resuming
QUESTIONS = [Question(i, f"What is {i} + {i}?", str(2 * i), [{"role": "user", "content": str(i)}])
             for i in range(10)]


class FakeGenerator:
    """Answers 2i correctly for even i, wrongly for odd i; the sample text includes the seed, so
    a resumed run only matches an uninterrupted one if the chunk seeds match too."""

    def __init__(self, samples=1, fail_on_call=None):
        self.samples, self.fail_on_call, self.calls = samples, fail_on_call, []

    def __call__(self, prompts, seed):
        self.calls.append((len(prompts), seed))
        if self.fail_on_call == len(self.calls):
            raise KeyboardInterrupt("simulated disconnect")
        outputs = []
        for prompt in prompts:
            i = int(prompt[0]["content"])
            answer = 2 * i if i % 2 == 0 else 2 * i + 1
            outputs.append([Completion(f"seed {seed} sample {j}\n<answer>{answer}</answer>",
                                       10 + i, True) for j in range(self.samples)])
        return outputs


def test_run_writes_samples_and_summary(tmp_path):
    config = EvalConfig(mode="smoke", batch_size=4)
    summary = evaluation.run_evaluation(config, tmp_path, FakeGenerator(), QUESTIONS,
                                        progress=False)
    rows = evaluation.read_samples(tmp_path)
    assert [r["id"] for r in rows] == list(range(10))
    assert summary["accuracy_strict"] == 0.5
    assert json.loads((tmp_path / "summary.json").read_text())["accuracy_strict"] == 0.5
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 4


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    config = EvalConfig(mode="smoke", batch_size=3, samples=2, temperature=0.7, seed=5)
    reference = evaluation.run_evaluation(config, tmp_path / "ref", FakeGenerator(2), QUESTIONS,
                                          progress=False)
    broken = FakeGenerator(2, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        evaluation.run_evaluation(config, tmp_path / "run", broken, QUESTIONS, progress=False)
    assert len(evaluation.read_samples(tmp_path / "run")) == 2 * 6  # two chunks were saved
    with open(tmp_path / "run" / "samples.jsonl", "a") as handle:
        handle.write('{"id": 6, "sampl')  # a write torn by the disconnect
    resumed = FakeGenerator(2)
    summary = evaluation.run_evaluation(config, tmp_path / "run", resumed, QUESTIONS,
                                        progress=False)
    assert resumed.calls == [(3, 11), (1, 14)]  # only the unfinished chunks, same seeds
    assert evaluation.read_samples(tmp_path / "run") == evaluation.read_samples(tmp_path / "ref")
    assert {k: v for k, v in summary.items() if k != "backend"} == \
        {k: v for k, v in reference.items() if k != "backend"}


def test_resume_refuses_different_settings(tmp_path):
    evaluation.run_evaluation(EvalConfig(mode="smoke", batch_size=4), tmp_path, FakeGenerator(),
                              QUESTIONS[:4], progress=False)
    other = EvalConfig(mode="smoke", batch_size=4, max_new_tokens=99)
    with pytest.raises(ValueError, match="max_new_tokens"):
        evaluation.run_evaluation(other, tmp_path, FakeGenerator(), QUESTIONS[:4], progress=False)
    summary = evaluation.run_evaluation(other, tmp_path, FakeGenerator(), QUESTIONS[:4],
                                        overwrite=True, progress=False)
    assert summary["config"]["max_new_tokens"] == 99


def test_resume_refuses_a_retrained_adapter(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v1")
    config = EvalConfig(mode="smoke", batch_size=4, adapter=str(adapter))
    run = tmp_path / "run"
    evaluation.run_evaluation(config, run, FakeGenerator(), QUESTIONS[:4], progress=False)
    evaluation.run_evaluation(config, run, FakeGenerator(), QUESTIONS[:4], progress=False)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights v2")  # retrained in place
    with pytest.raises(ValueError, match="adapter_fingerprint"):
        evaluation.run_evaluation(config, run, FakeGenerator(), QUESTIONS[:4], progress=False)


def test_config_rejects_greedy_with_several_samples():
    with pytest.raises(ValueError, match="temperature"):
        EvalConfig(mode="smoke", samples=4, temperature=0.0)
    config = evaluation.make_config("smoke", samples=4)
    assert config.temperature == evaluation.DEFAULT_SAMPLED_TEMPERATURE
    assert evaluation.make_config("cpu").n_questions == evaluation.MODE_DEFAULTS["cpu"]["n_questions"]


def test_select_questions_is_a_seeded_subset_with_split_ids():
    full = evaluation.select_questions("test")
    assert len(full) == 1319 and [q.id for q in full[:3]] == [0, 1, 2]
    subset = evaluation.select_questions("test", 20, seed=1)
    assert subset == evaluation.select_questions("test", 20, seed=1)
    assert [q.id for q in subset] == sorted(q.id for q in subset)
    assert all(full[q.id] == q for q in subset)
    assert subset != evaluation.select_questions("test", 20, seed=2)


# ----------------------------------------------------------------------------- pairing
def test_compare_identical_runs_finds_nothing():
    rows = make_rows({0: [GOOD], 1: ["<answer>7</answer>"], 2: [GOOD]})
    result = evaluation.compare_runs(rows, rows)
    assert result["difference"] == 0 and result["difference_ci95"] == [0.0, 0.0]
    assert result["mcnemar"] == {"only_a": 0, "only_b": 0, "p_value": 1.0}


def test_compare_counts_discordant_questions():
    wrong = "<answer>7</answer>"
    base = make_rows({i: [wrong if i < 12 else GOOD] for i in range(20)})
    trained = make_rows({i: [GOOD if i < 11 else wrong if i == 19 else GOOD] for i in range(20)})
    result = evaluation.compare_runs(base, trained)
    assert result["mcnemar"]["only_a"] == 1 and result["mcnemar"]["only_b"] == 12
    assert result["difference"] == pytest.approx(11 / 20)
    assert 0 < result["difference_ci95"][0] < 0.55 < result["difference_ci95"][1]
    assert result["mcnemar"]["p_value"] < 0.01
    assert "significant" in evaluation.format_comparison(result)


def test_compare_refuses_unpaired_runs_and_skips_mcnemar_for_samples():
    a = make_rows({0: [GOOD], 1: [GOOD]})
    b = [dict(r, question="another question") for r in a]
    with pytest.raises(ValueError, match="different questions"):
        evaluation.compare_runs(a, b)
    sampled = make_rows({0: [GOOD, GOOD], 1: [GOOD, "<answer>1</answer>"]})
    assert evaluation.compare_runs(a, sampled)["mcnemar"] is None


# ----------------------------------------------------------------------------- errors, parsers
def test_error_table_partitions_the_samples():
    rows = make_rows({0: [GOOD], 1: ["The answer is 18."], 2: ["<answer>7</answer>"],
                      3: ["I think..."], 4: [GOOD]})
    table = evaluation.error_table(rows)
    assert table["count"].to_dict() == {"correct": 2, "format_failure": 1, "no_answer": 1,
                                        "wrong_number": 1}
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["no_answer", "truncated"] == 1
    assert "read 7" in table.loc["wrong_number", "examples"]


def test_parsers_disagree_where_they_should():
    cases = {
        # (strict regex, last number, ours strict, ours lenient)
        "<answer>18.00</answer>": (False, False, True, True),
        "9 * 2 = 18 so she has $18 left, then pays 2": (False, False, False, False),
        "<think>18 eggs? no</think> The answer is 18. (It was 20 - 2)": (False, False, False, True),
        GOOD: (True, True, True, True),
    }
    strict, last, ours_strict, ours = evaluation.PARSERS.values()
    for text, expected in cases.items():
        got = (strict(text, "18"), last(text, "18"), ours_strict(text, "18"), ours(text, "18"))
        assert got == expected, text
    # a right number that was never stated as the answer (the grader reads final statements,
    # so the sentence must not be one: "she buys 18" would be)
    never_an_answer = "She has 4 apples. We still need to feed all 18 chickens"
    assert last(never_an_answer, "18") and not ours(never_an_answer, "18")


def test_parser_comparison_table_and_disagreements():
    never_an_answer = "She has 4 apples. We still need to feed all 18 chickens"  # no answer
    rows = make_rows({0: ["<answer>18.00</answer>"], 1: [GOOD], 2: [never_an_answer]})
    table = evaluation.parser_comparison({"run": rows})
    assert table.loc["strict regex (tags, string match)", "run"] == pytest.approx(1 / 3)
    assert table.loc["ours, lenient (utils.rewards.is_correct)", "run"] == pytest.approx(2 / 3)
    assert table.loc["flexible last number", "run"] == pytest.approx(2 / 3)
    disagreements = evaluation.parser_disagreements(rows)
    assert [d["completion"] for d in disagreements] == ["<answer>18.00</answer>", never_an_answer]


# ----------------------------------------------------------------------------- plots
def test_plots_draw_one_series_per_run():
    greedy = make_rows({0: [GOOD], 1: ["<answer>7</answer>"], 2: ["The answer is 18."]})
    sampled = make_rows({0: [GOOD, GOOD], 1: [GOOD, "x"], 2: ["x", "x"]})
    summaries = {"base": evaluation.summarize(greedy), "trained": evaluation.summarize(sampled)}
    fig = evaluation.plot_accuracy(summaries)
    assert len(fig.axes[0].patches) == 2 + 4  # greedy: strict, lenient; sampled: + maj@k, pass@k
    runs = {"base": greedy, "trained": sampled}
    assert len(evaluation.plot_lengths(runs).axes[0].get_legend().get_texts()) == 2
    assert len(evaluation.plot_accuracy_by_length(runs, bins=2).axes[0].lines) >= 2
    points = evaluation.accuracy_by_length(sampled, bins=2)
    assert sum(p["n"] for p in points) == len(sampled)


def test_accuracy_by_length_with_every_completion_the_same_length_is_one_full_bin():
    # smoke mode: every completion is cut at max_new_tokens, so all lengths are equal
    rows = [{"num_tokens": 24, "correct_lenient": ok} for ok in (True, False, False, False)]
    assert evaluation.accuracy_by_length(rows, bins=4, metric="correct_lenient") == [
        {"low": 24, "high": 24, "n": 4, "accuracy": 0.25}]
    fig = evaluation.plot_accuracy_by_length({"base": rows}, bins=4, metric="correct_lenient")
    assert len(fig.axes[0].lines) >= 1 and fig.axes[0].lines[0].get_xydata().tolist() == [[24, 0.25]]
    assert evaluation.accuracy_by_length([], bins=4) == []


def test_accuracy_by_length_bins_hold_every_row_once_with_ties():
    lengths = [10, 10, 10, 10, 20, 30, 256, 256]
    rows = [{"num_tokens": n, "correct_strict": n < 100} for n in lengths]
    points = evaluation.accuracy_by_length(rows, bins=4)
    assert sum(p["n"] for p in points) == len(rows)
    assert points[0]["low"] == 10 and points[-1]["high"] == 256 and points[-1]["accuracy"] == 0.0


# ----------------------------------------------------------------------------- Hugging Face path
@pytest.fixture(scope="module")
def lora_adapters(tmp_path_factory):
    """An untrained LoRA (B = 0: the same model) and a random one, saved with peft."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from utils.models import LORA_TARGETS, tiny_qwen2_path

    root = tmp_path_factory.mktemp("adapters")
    paths = {}
    for name, init in (("untrained", True), ("random", False)):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_path())
        config = LoraConfig(r=8, lora_alpha=64, target_modules=LORA_TARGETS,
                            init_lora_weights=init, task_type="CAUSAL_LM")
        get_peft_model(base, config).save_pretrained(root / name)
        paths[name] = root / name
    return paths


def test_hf_backend_evaluates_base_and_adapter(tmp_path, lora_adapters):
    questions = evaluation.select_questions("test", 3, seed=0)
    common = {"mode": "smoke", "max_new_tokens": 12, "batch_size": 2}
    runs = {}
    for name, adapter in (("base", None), *lora_adapters.items()):
        config = EvalConfig(adapter=str(adapter) if adapter else None, **common)
        summary = evaluation.run_evaluation(config, tmp_path / name, questions=questions,
                                            progress=False)
        assert summary["backend"] == "hf" and summary["n_questions"] == 3
        runs[name] = evaluation.read_samples(tmp_path / name)
    texts = {name: [r["completion"] for r in rows] for name, rows in runs.items()}
    assert texts["untrained"] == texts["base"]  # a zero LoRA changes nothing
    assert texts["random"] != texts["base"]  # the adapter really is applied
    assert all(0 < r["num_tokens"] <= 12 for r in runs["base"])


# ----------------------------------------------------------------------------- vLLM path (faked)
@pytest.fixture
def fake_vllm(monkeypatch):
    """Just enough of vLLM's API to check our use of it: per-question seeds, the LoRA request,
    token counts and finish reasons."""
    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class LoRARequest:
        def __init__(self, name, lora_id, path):
            self.name, self.lora_id, self.path = name, lora_id, path

    class LLM:
        def get_tokenizer(self):
            return types.SimpleNamespace(
                apply_chat_template=lambda messages, **kw: "|".join(m["content"] for m in messages))

        def generate(self, texts, params, lora_request=None, use_tqdm=True):
            calls.update(texts=texts, params=params, lora=lora_request)
            return [types.SimpleNamespace(outputs=[
                types.SimpleNamespace(text=f"<answer>{p.seed}</answer>", token_ids=[1] * (j + 3),
                                      finish_reason="stop" if j == 0 else "length")
                for j in range(p.n)]) for p in params]

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    return LLM(), calls


def test_vllm_generator_maps_settings_and_outputs(fake_vllm):
    llm, calls = fake_vllm
    config = EvalConfig(mode="gpu", adapter="runs/gpu/adapter", samples=2, temperature=0.8,
                        top_p=0.95, max_new_tokens=64)
    generate = evaluation.vllm_generator(llm, config)
    outputs = generate([[{"role": "user", "content": "q1"}], "raw prompt"], 100)
    assert calls["texts"] == ["q1", "raw prompt"]
    assert [p.seed for p in calls["params"]] == [100, 101]
    assert {(p.n, p.temperature, p.top_p, p.max_tokens) for p in calls["params"]} == {
        (2, 0.8, 0.95, 64)}
    assert calls["lora"].path == "runs/gpu/adapter"
    assert outputs[1] == [Completion("<answer>101</answer>", 3, True),
                          Completion("<answer>101</answer>", 4, False)]
    evaluation.vllm_generator(llm, EvalConfig(mode="gpu"))(["p"], 0)
    assert calls["lora"] is None  # the base model: no LoRA request


def test_adapter_rank_reads_the_saved_config(lora_adapters, tmp_path):
    assert evaluation.adapter_rank(lora_adapters["random"]) == 8
    with pytest.raises(FileNotFoundError):
        evaluation.adapter_rank(tmp_path)


def test_shared_vllm_only_in_gpu_mode_where_vllm_runs(monkeypatch, lora_adapters):
    import utils.models

    loaded = []
    monkeypatch.setattr(evaluation, "load_vllm", lambda **kwargs: loaded.append(kwargs) or "engine")
    monkeypatch.setattr(utils.models, "vllm_status", lambda: (True, "ok"))
    assert evaluation.shared_vllm("cpu", lora_adapters["random"]) is None
    assert evaluation.shared_vllm("smoke") is None
    assert loaded == []
    assert evaluation.shared_vllm("gpu", lora_adapters["random"]) == "engine"
    assert loaded == [{"max_lora_rank": 8, "max_model_len": 1024 + 1024}]
    monkeypatch.setattr(utils.models, "vllm_status", lambda: (False, "a T4"))
    assert evaluation.shared_vllm("gpu", lora_adapters["random"]) is None
