"""GRPO written out in plain PyTorch (utils.grpo_scratch) against TRL's GRPOTrainer, same batch."""

import json

import pytest
import torch

from utils import grpo_scratch, trl_check
from utils.training import ensure_logprob_kernel

REWARDS = [0.0, 1.0, 0.5, 0.25,  # a mixed group
           1.0, 1.0, 1.0, 1.0]   # a constant group: no signal


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo"])
def test_one_step_loss_and_gradients_equal_trl(tmp_path, loss_type):
    ensure_logprob_kernel()
    queue = trl_check.RewardQueue()
    trainer = trl_check.tiny_grpo_trainer(str(trl_check.tiny_model_dir(tmp_path / "m")),
                                          str(tmp_path / "out"), reward_func=queue,
                                          loss_type=loss_type, temperature=0.9, bf16=False)
    queue.pending = list(REWARDS)
    prompts = [{"prompt": "t1 t2"}] * 4 + [{"prompt": "t3 t4 t5"}] * 4
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(prompts)
    model = trainer.model

    model.zero_grad()
    theirs = trainer._compute_loss(model, inputs)
    theirs.backward()
    their_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    batch = grpo_scratch.Rollout(inputs["prompt_ids"], inputs["prompt_mask"],
                                 inputs["completion_ids"], inputs["completion_mask"],
                                 texts=[""] * 8, rewards=torch.tensor(REWARDS), scores=[])
    ours, advantages = grpo_scratch.grpo_loss(model, batch, group_size=4, temperature=0.9,
                                              loss_type=loss_type, max_completion_length=8)
    ours.backward()

    assert torch.allclose(advantages, inputs["advantages"].float(), atol=1e-5)
    assert abs(ours.item() - theirs.item()) < 1e-6 and ours.item() != 0
    assert their_grads and set(their_grads) == {n for n, p in model.named_parameters()
                                                 if p.grad is not None}
    for name, grad in their_grads.items():
        assert torch.allclose(dict(model.named_parameters())[name].grad, grad, atol=1e-6), name


def test_token_logprobs_read_the_right_positions():
    """Log-prob of each completion token equals a one-row forward without padding."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(trl_check.tiny_model_dir())
    prompt, completion = [5, 6, 7], [8, 9]
    logp = grpo_scratch.token_logprobs(model, torch.tensor([prompt]), torch.ones(1, 3).long(),
                                       torch.tensor([completion]), torch.ones(1, 2).long())
    logits = model(torch.tensor([prompt + completion])).logits[0].log_softmax(-1)
    assert torch.allclose(logp[0], torch.stack([logits[2, 8], logits[3, 9]]), atol=1e-6)


def test_shared_prefix_gives_the_same_logprobs_and_gradients():
    from utils.models import load_for_inference
    from utils.prompts import build_messages

    model, tokenizer = load_for_inference("smoke")
    batch = grpo_scratch.rollout(model, tokenizer, [build_messages("1 + 1?"),
                                                    build_messages("What is 12 - 5?")],
                                 ["2", "7"], group_size=2, max_new_tokens=6, seed=3)
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask, 0.7)
    grads, logps = [], []
    for share in (False, True):
        model.zero_grad()
        logp = grpo_scratch.token_logprobs(model, *args, share_prefix=share, group_size=2)
        (logp * batch.completion_mask).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
        logps.append((logp * batch.completion_mask).detach())
    assert torch.allclose(logps[0], logps[1], atol=1e-5)
    assert grads[0] and grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4), name


def test_rollout_scores_groups_and_logs(tmp_path):
    from utils.models import load_for_inference
    from utils.prompts import build_messages

    model, tokenizer = load_for_inference("smoke")
    batch = grpo_scratch.rollout(model, tokenizer, [build_messages("1 + 1?")] * 2, ["2", "3"],
                                 group_size=3, max_new_tokens=5, prefill="<think>\n", seed=1)
    assert batch.completion_ids.shape[0] == batch.prompt_ids.shape[0] == 6
    assert batch.completion_mask.sum(1).le(5).all() and batch.completion_mask[:, 0].all()
    assert all(text.startswith("<think>\n") for text in batch.texts)
    again = grpo_scratch.rollout(model, tokenizer, [build_messages("1 + 1?")] * 2, ["2", "3"],
                                 group_size=3, max_new_tokens=5, prefill="<think>\n", seed=1)
    assert again.texts == batch.texts  # seeded sampling
    assert grpo_scratch.spread_share(torch.tensor([1.0, 1, 1, 0, 1, 0]), 3) == 0.5
    path = tmp_path / "completions.jsonl"
    grpo_scratch.log_completions(path, 7, batch, [10, 11], group_size=3)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["question"] for r in rows] == [10, 10, 10, 11, 11, 11]
    assert rows[0]["step"] == 7 and rows[0]["text"] == batch.texts[0]
    assert {"accuracy", "total"} <= set(rows[0]["rewards"])


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_backward_in_passes_gives_the_one_pass_gradients(loss_type):
    from utils.models import load_for_inference
    from utils.prompts import build_messages

    model, tokenizer = load_for_inference("smoke")
    questions = ["What is 2 + 3?", "Tom has 4 apples and buys 7 more. How many now?", "1 + 1?"]
    batch = grpo_scratch.rollout(model, tokenizer, [build_messages(q) for q in questions],
                                 ["5", "11", "2"], 2, 6, seed=0, precision="bf16")
    batch.rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.0])
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    loss, _ = grpo_scratch.grpo_loss(model, batch, 2, loss_type=loss_type, share_prefix=True)
    loss.backward()
    whole = [p.grad.clone() for p in params]
    metrics = dict(batch.metrics)
    model.zero_grad()
    value = grpo_scratch.grpo_backward(model, batch, 2, rows_per_pass=2, loss_type=loss_type)
    assert value == pytest.approx(loss.item(), abs=1e-6)
    for a, b in zip(whole, (p.grad for p in params)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    for key in ("sampling/sampling_logp_difference/max", "sampling/importance_sampling_ratio/min",
                "sampling/importance_sampling_ratio/max", "sampling/sampling_logp_difference/mean"):
        assert batch.metrics[key] == pytest.approx(metrics[key], rel=1e-3)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_backward_skips_groups_without_spread_and_keeps_the_gradients(loss_type):
    from utils.models import load_for_inference
    from utils.prompts import build_messages

    model, tokenizer = load_for_inference("smoke")
    questions = ["What is 2 + 3?", "Tom has 4 apples and buys 7 more. How many now?", "1 + 1?"]
    batch = grpo_scratch.rollout(model, tokenizer, [build_messages(q) for q in questions],
                                 ["5", "11", "2"], 2, 6, seed=0, precision="fp32")
    batch.rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 0.0])  # the middle group: no spread
    params = [p for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    loss, _ = grpo_scratch.grpo_loss(model, batch, 2, loss_type=loss_type, share_prefix=True)
    loss.backward()
    whole = [p.grad.clone() for p in params]
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(args[0].shape[0]))
    model.zero_grad()
    try:
        value = grpo_scratch.grpo_backward(model, batch, 2, rows_per_pass=2, loss_type=loss_type)
    finally:
        hook.remove()
    assert value == pytest.approx(loss.item(), abs=1e-6)
    for a, b in zip(whole, (p.grad for p in params)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    assert max(seen) <= 2 and sum(s for s in seen if s == 2) == 4  # 2 groups x 2 rows ran, not 3
