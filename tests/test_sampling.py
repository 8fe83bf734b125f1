"""utils.sampling: the lean sampler computes the policy's own log-probs, follows a LoRA, stops
rows at end-of-sequence, draws from the right distribution, and picks bf16 only where native."""

import pytest
import torch

from utils import grpo_scratch, sampling
from utils.generation import eos_ids, render_prompt
from utils.models import load_for_inference
from utils.prompts import build_messages
from utils.sampling import LeanSampler

QUESTIONS = ["What is 2 + 3?", "Tom has 4 apples and buys 7 more. How many apples now?",
             "A much longer question about pencils in boxes: how many pencils in all?"]


@pytest.fixture(scope="module")
def smoke():
    model, tokenizer = load_for_inference("smoke")
    return model.eval(), tokenizer


def _prompts(tokenizer, questions=QUESTIONS):
    return [tokenizer(render_prompt(tokenizer, build_messages(q)), add_special_tokens=False)
            ["input_ids"] for q in questions]


def _model_logps(model, prompt, tokens, temperature=1.0):
    """The model's own log-probs of ``tokens`` after ``prompt``, one plain forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + tokens])).logits[0].float() / temperature
    logp = logits.log_softmax(-1)[len(prompt) - 1:len(prompt) - 1 + len(tokens)]
    return logp.gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fp32_sampler_logps_are_the_models(smoke, temperature):
    model, tokenizer = smoke
    prompts = _prompts(tokenizer)  # three lengths: left padding is exercised
    tokens, logps = LeanSampler(model, torch.float32).sample(
        prompts, 3, 16, eos_ids(model, tokenizer), temperature,
        generator=torch.Generator().manual_seed(1))
    assert len(tokens) == 9
    for i, (row, row_logp) in enumerate(zip(tokens, logps)):
        expected = _model_logps(model, prompts[i // 3], row, temperature)
        torch.testing.assert_close(torch.tensor(row_logp), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", ["no shared prefix", "one prompt", "one token apart"])
def test_shared_prefix_pass_changes_no_logp(smoke, case):
    # the prompts' common prefix runs once; whatever it is, the log-probs stay the model's
    model, tokenizer = smoke
    chat = _prompts(tokenizer)
    prompts = {"no shared prefix": [[5] + chat[0], [6] + chat[1][:40]],
               "one prompt": chat[2:],
               "one token apart": [chat[1], chat[1][:-1] + [7]]}[case]
    tokens, logps = LeanSampler(model, torch.float32).sample(
        prompts, 2, 12, eos_ids(model, tokenizer), 1.0, generator=torch.Generator().manual_seed(3))
    for i, (row, row_logp) in enumerate(zip(tokens, logps)):
        expected = _model_logps(model, prompts[i // 2], row)
        torch.testing.assert_close(torch.tensor(row_logp), expected, atol=1e-4, rtol=0)


def test_sampler_follows_the_lora(smoke):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_for_inference("smoke")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                             task_type="CAUSAL_LM")).eval()
    with torch.no_grad():  # a LoRA that changes the outputs (B starts at zero)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    prompts = _prompts(tokenizer)[:2]
    tokens, logps = LeanSampler(model, torch.float32).sample(
        prompts, 2, 10, eos_ids(model, tokenizer), 1.0, generator=torch.Generator().manual_seed(0))
    base = model.get_base_model()
    for i, (row, row_logp) in enumerate(zip(tokens, logps)):
        torch.testing.assert_close(torch.tensor(row_logp), _model_logps(model, prompts[i // 2], row),
                                   atol=1e-4, rtol=0)
    with model.disable_adapter():  # and it is not the base model's
        assert not torch.allclose(torch.tensor(logps[0]), _model_logps(base, prompts[0], tokens[0]),
                                  atol=1e-2)


def test_rows_stop_at_eos_and_finished_groups_leave(smoke):
    model, tokenizer = smoke
    prompts = _prompts(tokenizer)
    sampler = LeanSampler(model, torch.float32)
    free, _ = sampler.sample(prompts, 4, 12, [10**6], 1.0, generator=torch.Generator().manual_seed(3))
    assert all(len(row) == 12 for row in free)
    # declare two frequent tokens end-of-sequence: rows end at different steps, groups leave
    counts = torch.bincount(torch.tensor([t for row in free for t in row]))
    eos = counts.topk(2).indices.tolist()
    tokens, logps = sampler.sample(prompts, 4, 12, eos, 1.0,
                                   generator=torch.Generator().manual_seed(3))
    assert tokens == [[t for t in row[:next((i + 1 for i, t in enumerate(row) if t in eos), 12)]]
                      for row in free]  # same draws, cut after the first end-of-sequence
    assert len({len(row) for row in tokens}) > 1
    for i, (row, row_logp) in enumerate(zip(tokens, logps)):
        torch.testing.assert_close(torch.tensor(row_logp), _model_logps(model, prompts[i // 4], row),
                                   atol=1e-4, rtol=0)


def test_draws_follow_the_distribution(smoke):
    model, tokenizer = smoke
    prompt = _prompts(tokenizer)[:1]
    tokens, _ = LeanSampler(model, torch.float32).sample(
        prompt, 4000, 1, [10**6], 0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        probs = (model(input_ids=torch.tensor(prompt)).logits[0, -1].float() / 0.3).softmax(-1)
    # four bins of the vocabulary holding a quarter of the probability each (by cumulative
    # probability, most likely first): each should get a quarter of the draws (sd ~0.007)
    order = probs.argsort(descending=True)
    bin_of = torch.empty_like(order)
    bin_of[order] = (probs[order].cumsum(0) * 4).clamp(max=3.999).long()
    mass = torch.zeros(4).index_add_(0, bin_of, probs)
    seen = torch.bincount(bin_of[torch.tensor([row[0] for row in tokens])], minlength=4) / 4000
    assert (seen - mass).abs().max() < 0.035


def test_top_p_keeps_only_the_nucleus(smoke):
    model, tokenizer = smoke
    prompt = _prompts(tokenizer)[:1]
    tokens, _ = LeanSampler(model, torch.float32).sample(
        prompt, 500, 1, [10**6], 1.0, top_p=0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(prompt)).logits[0, -1:].float()
    allowed = set(torch.isfinite(sampling.filter_top_p(logits, 0.3))[0].nonzero().squeeze(1).tolist())
    assert {row[0] for row in tokens} <= allowed


def test_seeded(smoke):
    model, tokenizer = smoke
    sampler = LeanSampler(model, torch.float32)
    draws = [sampler.sample(_prompts(tokenizer), 2, 8, [10**6], 1.0,
                            generator=torch.Generator().manual_seed(s))[0] for s in (4, 4, 5)]
    assert draws[0] == draws[1] != draws[2]


def test_bf16_sampler_is_close_but_not_equal(smoke):
    model, tokenizer = smoke
    prompts = _prompts(tokenizer)
    tokens, logps = LeanSampler(model, torch.bfloat16).sample(
        prompts, 2, 10, [10**6], 1.0, generator=torch.Generator().manual_seed(2))
    gaps = torch.cat([torch.tensor(lp) - _model_logps(model, prompts[i // 2], row)
                      for i, (row, lp) in enumerate(zip(tokens, logps))]).abs()
    assert 0 < gaps.max() < 0.1
    assert next(iter(model.parameters())).dtype == torch.float32  # the trainer is untouched


def test_precision_is_chosen_at_run_time(monkeypatch):
    assert sampling.sampling_dtype("fp32") == torch.float32
    assert sampling.sampling_dtype("bf16") == torch.bfloat16
    monkeypatch.setattr(sampling, "native_bf16", lambda: False)
    assert sampling.sampling_dtype("auto") == torch.float32
    monkeypatch.setattr(sampling, "native_bf16", lambda: True)
    assert sampling.sampling_dtype("auto") == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        sampling.sampling_dtype("fp16")


def test_greedy_gives_model_generates_tokens(smoke):
    from utils.generation import plain_generate_tokens

    model, tokenizer = smoke
    prompts = [build_messages(q) for q in QUESTIONS]
    tokens, _ = LeanSampler(model, torch.float32).sample(
        _prompts(tokenizer), 1, 20, eos_ids(model, tokenizer), temperature=0.0)
    assert tokens == plain_generate_tokens(model, tokenizer, prompts, 20)


def test_bad_temperature_and_unknown_models_are_told(smoke):
    model, _ = smoke
    with pytest.raises(ValueError, match="temperature"):
        LeanSampler(model).sample([[1, 2]], 1, 4, [0], temperature=-1.0)
    model.config.model_type, kept = "gpt2", model.config.model_type
    try:
        assert not LeanSampler.supports(model)
        with pytest.raises(ValueError, match="Llama and Qwen2"):
            LeanSampler(model)
    finally:
        model.config.model_type = kept


def test_rollout_records_the_samplers_logps_and_the_loss_reports_the_gap(smoke):
    model, tokenizer = smoke
    prompts = [build_messages(q) for q in QUESTIONS[:2]]
    for precision, largest in (("fp32", 1e-4), ("bf16", 0.1)):
        batch = grpo_scratch.rollout(model, tokenizer, prompts, ["5", "11"], 3, 8, seed=0,
                                     precision=precision)
        assert batch.precision == precision
        assert batch.sampler_logp.shape == batch.completion_ids.shape
        assert (batch.sampler_logp[batch.completion_mask == 0] == 0).all()
        batch.rewards = torch.tensor([1.0, 0, 0, 1, 0, 1])  # spread in both groups
        loss, _ = grpo_scratch.grpo_loss(model, batch, 3, share_prefix=True)
        assert torch.isfinite(loss)
        gap = batch.metrics["sampling/sampling_logp_difference/max"]
        assert gap < largest and (precision == "fp32" or gap > 0)
        assert 0 < batch.metrics["sampling/importance_sampling_ratio/min"] <= 1.0 + largest * 10
