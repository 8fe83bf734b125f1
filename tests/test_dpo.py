"""``utils.dpo`` against TRL's ``DPOTrainer``: the same batch through our loss and through TRL's.

A real, tiny ``DPOTrainer`` (the random one-layer Qwen2 of ``utils.trl_check``, nothing
downloaded) builds a preference batch with its own collator and computes its loss with its own
``compute_loss``; our :func:`utils.dpo.dpo_loss_on_batch` gets the same batch and the same two
models. Loss and gradients must agree to 1e-6, and a changed formula must not.
"""

from __future__ import annotations

import math

import pytest
import torch

from utils import dpo, trl_check

TOL = 1e-6
PAIRS = [
    {"prompt": "t1 t2", "chosen": " t3 t4 t5", "rejected": " t6"},
    {"prompt": "t7", "chosen": " t8", "rejected": " t9 t10 t11 t12"},
    {"prompt": "t2 t3 t4", "chosen": " t5 t6", "rejected": " t7 t8"},
    {"prompt": "t11", "chosen": " t12 t13", "rejected": " t1"},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return trl_check.tiny_model_dir(tmp_path_factory.mktemp("tiny-qwen2"))


def _models(model_dir):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # policy and reference must differ, or every log-ratio is 0
        for param in policy.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
    return policy, ref, tokenizer


def _trainer_and_batch(model_dir, tmp_path, beta):
    from datasets import Dataset
    from trl import DPOTrainer

    from utils.training import ensure_logprob_kernel

    ensure_logprob_kernel()
    policy, ref, tokenizer = _models(model_dir)
    config = dpo.dpo_config(tmp_path / "dpo", beta=beta, batch_size=len(PAIRS), max_steps=1)
    with trl_check._quiet():
        trainer = DPOTrainer(model=policy, ref_model=ref, args=config,
                             train_dataset=Dataset.from_list(PAIRS), processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, policy, ref, batch


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_loss_and_gradients_equal_trl(model_dir, tmp_path, beta):
    trainer, policy, ref, batch = _trainer_and_batch(model_dir, tmp_path, beta)
    assert batch["input_ids"].shape[0] == 2 * len(PAIRS)  # [chosen..., rejected...]
    policy.train()
    theirs = trainer.compute_loss(trainer.model, batch)
    theirs.backward()
    theirs_grads = [p.grad.clone() for p in policy.parameters()]
    policy.zero_grad()

    ours = dpo.dpo_loss_on_batch(policy, ref, batch, beta=beta)
    ours.loss.backward()

    assert abs(ours.loss.item() - theirs.item()) < TOL, (ours.loss.item(), theirs.item())
    for mine, trl_grad in zip((p.grad for p in policy.parameters()), theirs_grads):
        assert torch.allclose(mine, trl_grad, atol=TOL, rtol=0)
    # not vacuous: the two models disagree, so the loss is far from log 2
    assert abs(ours.loss.item() - math.log(2)) > 1e-3


def test_a_changed_formula_fails_the_comparison(model_dir, tmp_path):
    """Per-token mean instead of sum, or no reference: both differ from TRL's loss."""
    trainer, policy, ref, batch = _trainer_and_batch(model_dir, tmp_path, 0.1)
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch).item()
        args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
        lengths = batch["completion_mask"][:, 1:].sum(dim=1)
        pc, pr = (dpo.sequence_logps(policy, *args) / lengths).chunk(2)
        rc, rr = (dpo.sequence_logps(ref, *args) / lengths).chunk(2)
        mean_not_sum = dpo.dpo_loss(pc, pr, rc, rr, 0.1).loss.item()
        pc, pr = dpo.sequence_logps(policy, *args).chunk(2)
        no_ref = dpo.dpo_loss(pc, pr, torch.zeros_like(pc), torch.zeros_like(pr), 0.1).loss.item()
    assert abs(mean_not_sum - theirs) > 1e-3
    assert abs(no_ref - theirs) > 1e-3


def test_loss_is_log2_when_policy_equals_reference():
    logps = torch.tensor([-3.0, -7.5, -1.0])
    result = dpo.dpo_loss(logps, logps - 2.0, logps, logps - 2.0, beta=0.1)
    assert result.loss.item() == pytest.approx(math.log(2))
    assert result.reward_accuracy == 0.0


def test_loss_falls_as_the_chosen_side_gains():
    ref = torch.zeros(4)
    losses = [dpo.dpo_loss(torch.full((4,), m), ref, ref, ref, beta=0.5).loss.item()
              for m in (0.0, 1.0, 4.0)]
    assert losses[0] > losses[1] > losses[2]


def test_bad_beta_is_a_clear_error():
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.0)


# ----------------------------------------------------------------------------- pairs
def test_pairs_match_a_correct_with_an_incorrect_completion_of_the_same_prompt():
    groups = [
        {"prompt": "p1", "completions": ["a", "b", "c", "d"], "correct": [True, False, True, False]},
        {"prompt": "p2", "completions": ["e", "f"], "correct": [True, True]},      # no pair
        {"prompt": "p3", "completions": ["g", "h"], "correct": [False, False]},    # no pair
        {"prompt": "p4", "completions": ["i", "i", "j"], "correct": [True, True, False]},
    ]
    pairs = dpo.preference_pairs(groups, max_pairs_per_prompt=2)
    assert sorted(p["prompt"] for p in pairs) == ["p1", "p1", "p4"]  # duplicates "i" count once
    for pair in pairs:
        group = next(g for g in groups if g["prompt"] == pair["prompt"])
        verdict = dict(zip(group["completions"], group["correct"]))
        assert verdict[pair["chosen"]] and not verdict[pair["rejected"]]
    assert pairs == dpo.preference_pairs(groups, max_pairs_per_prompt=2)  # reproducible
    assert len(dpo.preference_pairs(groups, max_pairs_per_prompt=1)) == 2


def test_pairs_reject_bad_input():
    with pytest.raises(ValueError, match="correct"):
        dpo.preference_pairs([{"prompt": "p", "completions": ["a"], "correct": []}])
    with pytest.raises(ValueError, match="max_pairs"):
        dpo.preference_pairs([], max_pairs_per_prompt=0)


def test_train_dpo_without_pairs_says_why():
    with pytest.raises(ValueError, match="no preference pairs"):
        dpo.train_dpo(None, None, [], "unused")


def test_train_dpo_moves_a_lora_policy_towards_the_chosen_side(tmp_path):
    """The notebook's path: a PEFT LoRA policy (the smoke model), TRL's DPOTrainer, its own
    reference (the adapter's frozen starting copy). The loss starts at log 2 and falls."""
    from utils.models import LoraSettings, load_policy

    model, tokenizer = load_policy("smoke", lora=LoraSettings(rank=4, alpha=8))
    pairs = [{"prompt": f"Q{i}: 2+{i}=", "chosen": f" {2 + i}", "rejected": f" {7 * i + 1}"}
             for i in range(8)]
    trainer = dpo.train_dpo(model, tokenizer, pairs, tmp_path / "dpo", learning_rate=5e-3,
                            epochs=8, batch_size=4)
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)
    assert sum(losses[-2:]) / 2 < losses[0] - 0.02  # the last epoch (two batches) vs the start
    margins = [row["rewards/margins"] for row in trainer.state.log_history
               if "rewards/margins" in row]
    assert sum(margins[-2:]) / 2 > 0.02  # chosen now more likely than rejected, vs the reference
    # after training, with TRL's frozen "ref" adapter: ours uses the LoRA switched off instead
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        theirs = trainer.compute_loss(trainer.model, batch).item()
        ours = dpo.dpo_loss_on_batch(trainer.model, trainer.model.disable_adapter, batch).loss
    assert abs(ours.item() - theirs) < TOL and abs(theirs - math.log(2)) > 1e-3


def test_is_full_pairing_accepts_preference_pairs_and_rejects_bad_pairings():
    from utils.dpo import is_full_pairing, preference_pairs

    group = {"prompt": "p", "completions": ["a", "b", "a", "c", "d", "e"],
             "correct": [True, False, True, True, False, False]}
    for seed in range(5):
        pairs = preference_pairs([group], max_pairs_per_prompt=10, seed=seed)
        assert is_full_pairing(group, [(p["chosen"], p["rejected"]) for p in pairs])
    assert not is_full_pairing(group, [("a", "b")])                        # too few
    assert not is_full_pairing(group, [("a", "b"), ("a", "d")])            # "a" twice
    assert not is_full_pairing(group, [("b", "a"), ("c", "d")])            # swapped
    assert is_full_pairing({"completions": ["a", "b"], "correct": [True, True]}, [])
