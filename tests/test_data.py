import gzip
import json

import pytest

from utils import data
from utils.prompts import SYSTEM_PROMPT


def test_parse_gold_removes_commas_and_whitespace():
    assert data.parse_gold("so 1,000 + 450,000\n#### 1,450,000") == "1450000"
    assert data.parse_gold("#### -3 ") == "-3"
    assert data.parse_gold("a #### 5 then\n#### 7") == "7"


@pytest.mark.parametrize("bad", ["no marker", "####   ", None])
def test_parse_gold_rejects_solutions_without_an_answer(bad):
    with pytest.raises(ValueError):
        data.parse_gold(bad)


@pytest.mark.parametrize("split, rows", [("train", 7473), ("test", 1319)])
def test_shipped_splits_are_complete(split, rows):
    dataset = data.load_gsm8k(split)
    assert len(dataset) == rows
    assert set(dataset.column_names) == {"question", "solution", "answer", "prompt"}
    assert "shipped copy" in dataset.info.description


def test_rows_are_ready_for_trl():
    row = data.load_gsm8k("test")[0]
    assert row["question"].startswith("Janet")
    assert row["answer"] == "18"
    assert row["solution"].endswith("#### 18")
    assert row["prompt"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert row["prompt"][1]["content"] == row["question"]


def test_every_gold_answer_is_an_integer_without_commas():
    for split in data.SPLITS:
        for gold in data.load_gsm8k(split)["answer"]:
            assert "," not in gold
            int(gold)


def test_subset_is_reproducible_and_seeded():
    a = data.load_gsm8k("train", n=5, seed=1)["question"]
    assert a == data.load_gsm8k("train", n=5, seed=1)["question"]
    assert a != data.load_gsm8k("train", n=5, seed=2)["question"]
    assert len(a) == 5


def test_local_path_plain_and_gzip(tmp_path):
    rows = [{"question": "Q1?", "answer": "x\n#### 1,234"}, {"question": "Q2?", "answer": "#### 5"}]
    text = "\n".join(json.dumps(r) for r in rows) + "\n\n"
    plain = tmp_path / "mine.jsonl"
    plain.write_text(text)
    packed = tmp_path / "mine.jsonl.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        dataset = data.load_gsm8k("test", path=path)
        assert dataset["answer"] == ["1234", "5"]


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl.*pip install -e"):
        data.load_gsm8k("test", path=missing)


@pytest.mark.parametrize("content, message", [
    ('{"question": "q", "answer": "#### 1"}\n{broken\n', "line 2: not valid JSON"),
    ('{"question": "q"}\n', "line 1: a GSM8K row needs"),
    ("\n\n", "no GSM8K rows"),
])
def test_malformed_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        data.load_gsm8k("test", path=path)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.jsonl.gz"):
        data.load_gsm8k("test", path=path)


def test_unknown_split_and_bad_n():
    with pytest.raises(ValueError, match="split"):
        data.load_gsm8k("validation")
    with pytest.raises(ValueError, match="positive"):
        data.load_gsm8k("test", n=0)


def test_offline_never_touches_the_hub(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the Hub was called while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("datasets.load_dataset", fail)
    assert len(data.load_gsm8k("test", n=3)) == 3


def test_online_uses_the_hub_then_falls_back(monkeypatch, capsys):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    hub = datasets.Dataset.from_dict({"question": ["Hub Q?"], "answer": ["#### 9"]})
    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return hub

    monkeypatch.setattr("datasets.load_dataset", fake_load)
    dataset = data.load_gsm8k("test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert dataset["answer"] == ["9"] and "hub" in dataset.info.description

    def broken(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("datasets.load_dataset", broken)
    assert len(data.load_gsm8k("test")) == 1319
    assert "Hub not reachable (ConnectionError)" in capsys.readouterr().out
