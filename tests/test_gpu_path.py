"""The GPU path as far as a CPU takes it: the 4-bit LoRA policy, its GRPO step, the GPU presets.

- ``load_policy``'s ``peft`` backend (the loader multi-GPU runs and non-Unsloth users get) is run
  itself, on the smoke model: bitsandbytes has a CPU backend for 4-bit NF4, so only the device
  and the compute dtype are injected. One GRPO step with TRL runs on the result.
- Every GPU preset is built into TRL's ``GRPOConfig``, whose own validation runs. On a CPU, gpu
  mode refuses to start and transformers refuses bf16 configs, so those two hardware checks are
  patched to answer as that GPU would (no bf16 on a T4): the config itself is never changed.

Not tested here: Unsloth (it cannot import without CUDA; ``make check-gpu-api`` reads its source),
CUDA kernels, fp16/bf16 mixed precision in training, vLLM generation.
"""

from __future__ import annotations

import math
from dataclasses import replace

import bitsandbytes as bnb
import pytest
import torch
import transformers.training_args
from transformers import Trainer

import utils.runtime
from utils import models
from utils.install_sets import Runtime, choose
from utils.runtime import pick_dtype
from utils.toy_tasks import single_thread
from utils.training import PRESETS, get_preset, grpo_config, train, train_prompts

SMOKE = get_preset("smoke")
GPUS = {  # preset -> the GPU it is for: (name, compute capability)
    "t4": ("Tesla T4", (7, 5)),
    "l4": ("NVIDIA L4", (8, 9)),
    "a100": ("NVIDIA A100-SXM4-40GB", (8, 0)),
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(autouse=True)
def one_thread():
    # A 0.1M-parameter model: on the shared 2-core machine a GRPO step took 1-2 s on one
    # thread and 6-15 s on two (thread synchronisation, not work).
    with single_thread():
        yield


def gpu_dtype(monkeypatch, capability) -> torch.dtype:
    """The compute dtype gpu mode picks (``pick_dtype("cuda")``) on a GPU of this capability."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: True)
        patch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)
        return pick_dtype("cuda")


def load_4bit(compute_dtype=None, lora=SMOKE.lora):
    """The smoke model through the gpu-mode peft loader, on the CPU."""
    return models._load_policy_peft_4bit(str(models.tiny_qwen2_path()), lora, device="cpu",
                                         compute_dtype=compute_dtype)


def lora_modules(model):
    return [module for name, module in model.named_modules() if hasattr(module, "lora_A")
            and name.rsplit(".", 1)[-1] in models.LORA_TARGETS]


# ------------------------------------------------------------------ the peft 4-bit loader
def test_gpu_mode_peft_backend_calls_the_4bit_loader(monkeypatch):
    calls = []
    monkeypatch.setattr(utils.runtime, "cuda_available", lambda: True)  # get_mode("gpu") asks
    monkeypatch.setattr(models, "_load_policy_peft_4bit",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or ("m", "t"))
    lora = models.LoraSettings(rank=8, alpha=8)
    assert models.load_policy("gpu", model_name="some/model", lora=lora,
                              backend="peft") == ("m", "t")
    assert calls == [(("some/model", lora), {})]  # GPU defaults: no device, no dtype given


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_peft_backend_loads_the_smoke_model_in_4bit_with_double_quantisation(precision):
    model, tokenizer = load_4bit(DTYPES[precision])
    layers = lora_modules(model)
    assert len(layers) == len(models.LORA_TARGETS) * model.config.num_hidden_layers
    for layer in layers:
        base = layer.base_layer
        assert isinstance(base, bnb.nn.Linear4bit)
        assert base.weight.dtype == torch.uint8 and base.weight.quant_type == "nf4"
        assert base.weight.quant_state.nested  # double quantisation: the scales quantised too
        assert base.compute_dtype == DTYPES[precision]
        assert not base.weight.requires_grad
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    # prepare_model_for_kbit_training: norms and embeddings in fp32, checkpointing on
    assert all(p.dtype == torch.float32 for name, p in model.named_parameters()
               if "norm" in name or "embed" in name)
    assert model.is_gradient_checkpointing
    assert tokenizer.padding_side == "left"


@pytest.mark.parametrize("bf16, expected", [(False, torch.float16), (True, torch.bfloat16)])
def test_peft_backend_default_dtype_is_gpu_modes_choice(monkeypatch, bf16, expected):
    monkeypatch.setattr(utils.runtime, "supports_bf16", lambda: bf16)  # a T4, an Ampere+ GPU
    model, _ = load_4bit()  # no compute_dtype: the loader's own choice, pick_dtype("cuda")
    assert lora_modules(model)[0].base_layer.compute_dtype == expected == pick_dtype("cuda")


def test_gradients_reach_every_lora_through_the_4bit_layers():
    model, _ = load_4bit(torch.bfloat16)
    ids = torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    model(input_ids=ids, labels=ids).loss.backward()
    for layer in lora_modules(model):
        # LoRA B starts at zero, so at the first step only B gets a gradient (A's is B^T-shaped)
        assert layer.lora_B["default"].weight.grad.abs().sum() > 0
        assert layer.base_layer.weight.grad is None


@pytest.mark.parametrize("name", sorted(GPUS))
def test_one_grpo_step_with_each_gpu_presets_knobs_on_the_4bit_policy(name, monkeypatch,
                                                                      tmp_path):
    """The preset's loss, masking, reward scaling, schedule and LoRA shape, at smoke sizes,
    with the compute dtype that GPU gets; TRL runs the step in fp32 on the CPU."""
    preset = replace(PRESETS[name], num_generations=2, per_device_train_batch_size=4,
                     max_prompt_length=SMOKE.max_prompt_length, max_completion_length=8,
                     completions_to_print=1,
                     warmup_ratio=0.0)  # a warm-up over a 1-step run would leave lr at 0
    model, tokenizer = load_4bit(gpu_dtype(monkeypatch, GPUS[name][1]), lora=preset.lora)
    packed = {n: p.detach().clone() for n, p in model.named_parameters() if p.dtype == torch.uint8}
    rows = train_prompts(tokenizer, preset.max_prompt_length, n=8)
    result = train(model, tokenizer, preset, rows, tmp_path, mode="smoke", max_steps=1)
    step = next(row for row in result.log_history if "loss" in row)
    assert step["step"] == 1 and math.isfinite(step["loss"]) and math.isfinite(step["grad_norm"])
    assert step["learning_rate"] == pytest.approx(preset.learning_rate)
    assert "completions/clipped_ratio" in step and "reward" in step
    trained = result.trainer.model
    assert trained.is_gradient_checkpointing
    for n, p in trained.named_parameters():
        if n in packed:  # the 4-bit base is frozen: its packed bytes are untouched
            assert torch.equal(p, packed[n])
    assert len(packed) == len(lora_modules(trained)) and packed


# ---------------------------------------------------------------- the GPU presets in TRL
@pytest.fixture(params=sorted(GPUS))
def gpu(request, monkeypatch):
    """A preset's name and its GPU's runtime, with the two hardware checks answering as that
    GPU would: the course's own (gpu mode needs CUDA) and transformers' bf16 check."""
    name = request.param
    gpu_name, capability = GPUS[name]
    monkeypatch.setattr(utils.runtime, "cuda_available", lambda: True)
    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available",
                        lambda: capability >= (8, 0))
    return name, Runtime(colab=True, gpu_name=gpu_name, capability=capability, driver=(580, 82))


def test_each_gpu_gets_the_precision_its_preset_names(gpu, monkeypatch):
    name, runtime = gpu
    expected = "bf16" if runtime.capability >= (8, 0) else "fp16"  # Turing has no bf16
    assert PRESETS[name].precision == expected
    assert gpu_dtype(monkeypatch, runtime.capability) == DTYPES[expected]


def test_each_gpu_preset_builds_a_valid_trl_config(gpu, tmp_path):
    from trl import GRPOConfig

    name, runtime = gpu
    preset = PRESETS[name]
    has_vllm = any(r.startswith("vllm==") for r in choose(runtime).requirements)
    assert preset.use_vllm == has_vllm  # vLLM only where the GPU's install set has it
    # build_trainer asks for vLLM when the preset does and Unsloth started an engine
    config = grpo_config(preset, tmp_path, mode="gpu", use_vllm=preset.use_vllm)
    assert type(config) is GRPOConfig  # __post_init__ (TRL's and transformers') has run
    assert (config.fp16, config.bf16) == (preset.precision == "fp16", preset.precision == "bf16")
    assert not config.use_cpu and config.gradient_checkpointing
    assert config.generation_batch_size == (preset.per_device_train_batch_size
                                            * preset.gradient_accumulation_steps)
    assert config.generation_batch_size % config.num_generations == 0
    assert config.num_generations == preset.num_generations
    assert (config.loss_type, config.beta, config.scale_rewards) == (
        preset.loss_type, preset.beta, preset.scale_rewards)
    assert config.use_vllm is has_vllm
    if has_vllm:
        assert config.vllm_mode == "colocate"
        assert config.vllm_gpu_memory_utilization == preset.gpu_memory_utilization


@pytest.mark.filterwarnings("ignore:Paged optimizers are not supported on CPU")
def test_each_gpu_presets_optimizer_builds_and_steps(gpu, tmp_path):
    name, _ = gpu
    config = grpo_config(PRESETS[name], tmp_path, mode="gpu")
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(config)
    if "8bit" in PRESETS[name].optim:  # paged 8-bit AdamW comes from bitsandbytes
        assert optimizer_cls.__module__.startswith("bitsandbytes")
    weight = torch.nn.Parameter(torch.ones(64, 64))
    weight.grad = torch.ones_like(weight)
    optimizer_cls([weight], **kwargs).step()
    assert weight.lt(1).all()
