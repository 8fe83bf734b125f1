"""The Unsloth/vLLM API check's own logic, on a small synthetic wheel (no network).

The real run against the pinned wheels is `make check-gpu-api`.
"""

import json
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import check_gpu_api  # a script, not part of the package

WHEEL = {
    "unsloth/__init__.py": """
        import os
        if os.environ.get("UNSLOTH_MLX"):  # another platform's stand-in: not the CUDA path
            class FastLanguageModel:
                @staticmethod
                def from_pretrained(*args, **kwargs):
                    pass
        else:
            from .models import *
        """,
    "unsloth/models/__init__.py": "from .loader import FastLanguageModel\n",
    "unsloth/models/loader.py": """
        from .llama import FastLlamaModel
        from transformers import AutoConfig

        class FastLanguageModel(FastLlamaModel):
            @staticmethod
            def get_peft_model(model, *args, **kwargs):
                return FastLlamaModel.get_peft_model(model, *args, **kwargs)

            @staticmethod
            def from_pretrained(model_name="m", max_seq_length=2048, load_in_4bit=True,
                                fast_inference=False, **kwargs):
                token = kwargs.get("token")
                AutoConfig.from_pretrained(model_name, **kwargs)
                return _load(model_name, **kwargs)

        def _load(model_name, trust_remote_code=False, **kwargs):
            options = dict(kwargs)
            return _resolve(**options)

        def _resolve(revision=None):
            pass
        """,
    "unsloth/models/llama.py": """
        class FastLlamaModel:
            @staticmethod
            def get_peft_model(model, r=16, lora_alpha=16, random_state=3407, **kwargs):
                pass

            @staticmethod
            def for_inference(model):
                return model
        """,
    "unsloth/save.py": """
        def _bind_saving_method(func, obj, name):
            import types
            return types.MethodType(func, obj)

        def unsloth_generic_save_pretrained_merged(self, save_directory, tokenizer=None,
                                                   save_method="merged_16bit"):
            pass

        def unsloth_model_save_pretrained(self, *args, **kwargs):
            return self.original_model_save_pretrained(*args, **kwargs)

        def unsloth_save_pretrained_gguf(self, save_directory, tokenizer=None,
                                         quantization_method="fast_quantized"):
            pass

        def patch_saving_functions(model):
            model.save_pretrained = _bind_saving_method(
                unsloth_model_save_pretrained, model, "save_pretrained")
            model.save_pretrained_merged = _bind_saving_method(
                unsloth_generic_save_pretrained_merged, model, "save_pretrained_merged")
            model.save_pretrained_gguf = _bind_saving_method(
                unsloth_save_pretrained_gguf, model, "save_pretrained_gguf")
            return model
        """,
    "vllm/__init__.py": """
        import typing
        if typing.TYPE_CHECKING:
            from vllm.entrypoints.llm import LLM
            from vllm.sampling_params import SamplingParams
        else:
            def __getattr__(name):
                raise AttributeError(name)
        """,
    "vllm/sampling_params.py": """
        import msgspec

        class SamplingParams(msgspec.Struct, omit_defaults=True):
            n: int = 1
            temperature: float = 1.0
            seed: int | None = None
        """,
    "vllm/lora/request.py": """
        import msgspec

        class LoRARequest(msgspec.Struct):
            lora_name: str
            lora_int_id: int
            lora_path: str = ""
        """,
    "vllm/entrypoints/llm.py": """
        from vllm.engine.arg_utils import EngineArgs

        class LLM:
            def __init__(self, model, *, seed=0, **kwargs):
                self.args = EngineArgs(model=model, seed=seed, **kwargs)

            def generate(self, prompts, sampling_params=None, *, use_tqdm=True,
                         lora_request=None):
                pass
        """,
    "vllm/engine/arg_utils.py": """
        from dataclasses import dataclass, field

        @dataclass
        class EngineArgs:
            model: str = ""
            seed: int = 0
            max_model_len: int | None = None
            enable_lora: bool = False
            internal: list = field(default_factory=list, init=False)
        """,
}
COURSE = """
    from unsloth import FastLanguageModel
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest


    def load(name):
        kwargs = {"model_name": name, "max_seq_length": 64}
        model, tok = FastLanguageModel.from_pretrained(**kwargs, fast_inference=True,
                                                       token="t", trust_remote_code=True,
                                                       revision="main")
        model = FastLanguageModel.get_peft_model(model, r=8, lora_alpha=8, random_state=1)
        FastLanguageModel.for_inference(model)
        model.save_pretrained_merged("out", tok, save_method="merged_16bit")
        model.save_pretrained("adapter", selected_adapters=["default"])  # PEFT's own
        return model


    def engine(rank=None):
        lora = {}
        if rank:
            lora = {"enable_lora": True}
        return LLM(model="m", max_model_len=2048, seed=0, **lora)


    def sample(llm, adapter):
        request = LoRARequest("adapter", 1, adapter)
        params = SamplingParams(n=2, temperature=0.5, seed=3)
        return llm.generate(["q"], params, lora_request=request, use_tqdm=False)


    llm = engine(8)
    """
REQUIRED = ("unsloth.FastLanguageModel.from_pretrained", "unsloth.FastLanguageModel.get_peft_model",
            "unsloth.FastLanguageModel.for_inference", "model.save_pretrained_merged", "vllm.LLM",
            "vllm.LLM.generate", "vllm.SamplingParams", "vllm.lora.request.LoRARequest")


def build_wheel(tmp_path: Path, edits=()) -> Path:
    """The synthetic wheel, with ``(member, old, new)`` edits applied (each must match once)."""
    files = {member: textwrap.dedent(source) for member, source in WHEEL.items()}
    for member, old, new in edits:
        if old.endswith("\n") and not new:  # a whole line removed
            lines = files[member].splitlines(keepends=True)
            assert [line.strip() for line in lines].count(old.strip()) == 1, (member, old)
            files[member] = "".join(line for line in lines if line.strip() != old.strip())
            continue
        assert files[member].count(old) == 1, (member, old)
        files[member] = files[member].replace(old, new)
    path = tmp_path / "synthetic-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, source in files.items():
            wheel.writestr(member, source)
        wheel.writestr("synthetic-1.0.dist-info/METADATA", "Name: synthetic\n")
    return path


def course_file(tmp_path: Path, source: str = COURSE) -> Path:
    path = tmp_path / "course.py"
    path.write_text(textwrap.dedent(source))
    return path


def problems(tmp_path, edits=(), source=COURSE, required=REQUIRED):
    wheel = build_wheel(tmp_path, edits)
    _, found = check_gpu_api.check([course_file(tmp_path, source)], [wheel], root=tmp_path,
                                   required=required)
    return found


def test_the_course_calls_pass_against_the_wheel_they_were_written_for(tmp_path):
    lines, found = check_gpu_api.check([course_file(tmp_path)], [build_wheel(tmp_path)],
                                       root=tmp_path, required=REQUIRED)
    assert found == []
    calls = {line.split()[2].split("(")[0] for line in lines if line.startswith("ok")}
    assert calls == set(REQUIRED)  # save_pretrained is PEFT's (forwarded as is): not checked
    # keywords that only reach the code through **kwargs say where they were taken
    assert any("trust_remote_code" in line and "_load" in line for line in lines)


@pytest.mark.parametrize("edit, call, keyword", [
    # an explicit parameter removed: the keyword now only disappears into **kwargs
    (("unsloth/models/loader.py", "fast_inference=False, **kwargs)", "**kwargs)"),
     "course.py:9: unsloth.FastLanguageModel.from_pretrained", "fast_inference"),
    # removed where FastLanguageModel.get_peft_model forwards its **kwargs
    (("unsloth/models/llama.py", "r=16, ", ""),
     "course.py:12: unsloth.FastLanguageModel.get_peft_model", "r"),
    # two hops down: from_pretrained -> _load(**kwargs) -> _resolve(**a copy of kwargs)
    (("unsloth/models/loader.py", "def _resolve(revision=None)", "def _resolve(rev=None)"),
     "course.py:9: unsloth.FastLanguageModel.from_pretrained", "revision"),
    # a keyword read from **kwargs by name counts; without the read it does not
    (("unsloth/models/loader.py", 'token = kwargs.get("token")', "token = None"),
     "course.py:9: unsloth.FastLanguageModel.from_pretrained", "token"),
    (("unsloth/save.py", 'save_method="merged_16bit"', 'method="merged_16bit"'),
     "course.py:14: model.save_pretrained_merged", "save_method"),
    (("vllm/sampling_params.py", "temperature: float = 1.0\n", ""),
     "course.py:28: vllm.SamplingParams", "temperature"),
    (("vllm/entrypoints/llm.py", "*, use_tqdm=True,", "*,"),
     "course.py:29: vllm.LLM.generate", "use_tqdm"),
    # LLM(**lora): the keys of the dict literal are checked too, down into EngineArgs' fields
    (("vllm/engine/arg_utils.py", "enable_lora: bool = False\n", ""),
     "course.py:23: vllm.LLM", "enable_lora"),
])
def test_a_removed_keyword_fails_naming_the_call(tmp_path, edit, call, keyword):
    found = problems(tmp_path, [edit])
    assert len(found) == 1, found
    assert found[0].startswith(call) and f"keyword {keyword!r} is not a parameter" in found[0]


def test_a_removed_function_or_class_fails_naming_it(tmp_path):
    found = problems(tmp_path, [("unsloth/models/llama.py", "def for_inference(model)",
                                 "def for_inference_v2(model)")])
    assert found == [("course.py:13: unsloth.FastLanguageModel.for_inference(1 positional): "
                     "unsloth.FastLanguageModel.for_inference not found: no 'for_inference' "
                     "there")]
    found = problems(tmp_path, [("vllm/lora/request.py", "class LoRARequest", "class LoraReq")])
    assert any(p.startswith("course.py:4: `from vllm.lora.request import LoRARequest`")
               for p in found)


def test_positional_and_required_parameters_are_checked(tmp_path):
    found = problems(tmp_path, [("vllm/lora/request.py", 'lora_path: str = ""\n', "")])
    assert found == [("course.py:27: vllm.lora.request.LoRARequest(3 positional): "
                     "3 positional arguments, LoRARequest (vllm/lora/request.py:4) fields "
                     "takes 2")]
    found = problems(tmp_path, [("vllm/lora/request.py", 'lora_path: str = ""',
                                 'lora_path: str = ""\n    base_model: str')])
    assert any("required parameter(s) ['base_model']" in p for p in found)


def test_a_keyword_the_check_cannot_read_is_a_problem(tmp_path):
    source = COURSE.replace("**lora)", "**options())")
    found = problems(tmp_path, source=source)
    assert found and "cannot read the keywords of **options()" in found[0]


def test_an_api_the_course_should_call_but_the_check_does_not_see_is_a_problem(tmp_path):
    source = COURSE.replace("return llm.generate(", "return llm_engine.generate(")
    found = problems(tmp_path, source=source)
    assert found == [("no call of vllm.LLM.generate found in the course: the check no longer "
                     "sees it (renamed? moved?); fix the extraction or REQUIRED")]


def test_notebook_code_cells_are_read_with_their_magics_blanked(tmp_path):
    cells = [{"cell_type": "markdown", "source": ["# title"]},
             {"cell_type": "code", "source": ["!pip install x\n", "%time 1\n",
                                              "from vllm import SamplingParams\n",
                                              "SamplingParams(n=2, top_k=5)"]}]
    notebook = tmp_path / "05.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    _, found = check_gpu_api.check([notebook], [build_wheel(tmp_path)], root=tmp_path,
                                   required=())
    assert len(found) == 1
    assert found[0].startswith("05.ipynb cell 1:4: vllm.SamplingParams(n, top_k): "
                               "keyword 'top_k' is not a parameter")


def test_main_exits_1_and_prints_the_problem(tmp_path, capsys):
    course = course_file(tmp_path)
    good = build_wheel(tmp_path)
    assert check_gpu_api.main(["--source", str(good), "--course", str(course)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out
    bad = build_wheel(tmp_path, [("vllm/entrypoints/llm.py", "*, use_tqdm=True,", "*,")])
    assert check_gpu_api.main(["--source", str(bad), "--course", str(course)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "PROBLEM" in out and "'use_tqdm'" in out


def test_the_repositorys_own_calls_are_all_found(tmp_path):
    """The extraction on the real course code (against the synthetic wheel, so some calls do
    not match it): every API the check must see is seen."""
    lines, _ = check_gpu_api.check(check_gpu_api.course_files(ROOT), [build_wheel(tmp_path)],
                                   required=())
    seen = {line.split()[2].split("(")[0] for line in lines}
    assert set(check_gpu_api.REQUIRED) <= seen
    assert any(line.split()[1].startswith("utils/models.py:") for line in lines)


def test_the_pins_are_read_from_install_sets():
    from utils.install_sets import GPU, VLLM

    pins = check_gpu_api.pinned()
    assert set(pins) == set(check_gpu_api.PACKAGES)
    assert set(pins.values()) <= set(GPU) | set(VLLM)
