"""utils.generation: our decode loop gives model.generate's greedy tokens, and seeded samples."""

import pytest

from utils.generation import (
    _accepted,
    _draft,
    decode,
    eos_ids,
    generate,
    plain_generate_tokens,
    render_prompt,
)
from utils.models import load_for_inference
from utils.prompts import build_messages

QUESTIONS = ["What is 2 + 3?", "Tom has 4 apples and buys 7 more. How many apples now?",
             "Count to three.",
             "A much longer question about pencils in boxes: how many pencils in all?"]


@pytest.fixture(scope="module")
def smoke():
    model, tokenizer = load_for_inference("smoke")
    return model.eval(), tokenizer


def test_greedy_tokens_equal_model_generate(smoke):
    model, tokenizer = smoke
    prompts = [build_messages(q) for q in QUESTIONS]
    ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"]
           for p in prompts]
    ours = decode(model, ids, 24, eos_ids(model, tokenizer))
    assert ours == plain_generate_tokens(model, tokenizer, prompts, 24)
    # also without a shared prefix (plain strings) and one row alone
    texts = ["hello there", "a b c d e f"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    expected = plain_generate_tokens(model, tokenizer, texts, 12)
    assert decode(model, ids, 12, eos_ids(model, tokenizer)) == expected


def test_rows_stop_at_end_of_sequence(smoke):
    model, tokenizer = smoke
    eos = eos_ids(model, tokenizer)
    ids = [tokenizer("hello there", add_special_tokens=False)["input_ids"]] * 2
    first = decode(model, ids, 8, eos)[0]
    # declare the last generated token end-of-sequence: rows stop where it first appears
    k = first.index(first[-1])
    assert decode(model, ids, 8, [first[k]]) == [first[:k + 1], first[:k + 1]]


def test_sampling_is_seeded_and_uses_temperature_and_top_p(smoke):
    model, tokenizer = smoke
    prompts = [build_messages(q) for q in QUESTIONS[:2]]
    a = generate(model, tokenizer, prompts, n=3, max_new_tokens=10, temperature=1.0, seed=5)
    b = generate(model, tokenizer, prompts, n=3, max_new_tokens=10, temperature=1.0, seed=5)
    c = generate(model, tokenizer, prompts, n=3, max_new_tokens=10, temperature=1.0, seed=6)
    assert [[x.text for x in row] for row in a] == [[x.text for x in row] for row in b]
    assert [[x.text for x in row] for row in a] != [[x.text for x in row] for row in c]
    assert len(a) == 2 and all(len(row) == 3 for row in a)
    # top_p so small that only the most likely token survives: sampling becomes greedy
    nucleus = generate(model, tokenizer, prompts, max_new_tokens=10, temperature=1.0,
                       top_p=1e-6, seed=1)
    greedy = generate(model, tokenizer, prompts, max_new_tokens=10)
    assert [r[0].text for r in nucleus] == [r[0].text for r in greedy]


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2}, {"temperature": -1.0},
                                    {"temperature": 1.0, "top_p": 0.0}])
def test_bad_settings_are_refused(smoke, kwargs):
    model, tokenizer = smoke
    with pytest.raises(ValueError):
        generate(model, tokenizer, ["hi"], max_new_tokens=2, **kwargs)


def test_completion_fields(smoke):
    model, tokenizer = smoke
    [[completion]] = generate(model, tokenizer, ["hello"], max_new_tokens=5)
    assert 1 <= completion.num_tokens <= 5 and isinstance(completion.text, str)
    assert completion.finished or completion.num_tokens == 5


def test_prompt_lookup_drafts_copy_what_followed_the_last_ngram():
    tokens = [5, 6, 7, 8, 9, 1, 6, 7, 2, 5, 6, 7]
    # the last 3 tokens (5 6 7) occurred at the start, followed by 8 9 1
    assert _draft(tokens, 2) == [8, 9] and _draft(tokens, 5) == [8, 9, 1, 6, 7]
    # no earlier 3-gram: the last 2 tokens (7 3) did occur, followed by 4
    assert _draft([7, 3, 4, 1, 7, 3], 3) == [4, 1, 7]
    assert _draft([1, 2, 3, 4], 3) == []  # nothing repeats: no guess
    assert _accepted([4, 1, 7], [4, 1, 9, 0]) == 2 and _accepted([4], [3, 4]) == 0


def test_speculative_steps_keep_the_greedy_tokens(smoke):
    """A single row gets up to MAX_DRAFT guesses per pass: fewer forward passes than tokens,
    and still exactly model.generate's greedy tokens."""
    model, tokenizer = smoke
    prompts = ["one two three one two three one two three one two", "a b a b a b a b"]
    eos = eos_ids(model, tokenizer)
    for prompt in prompts:
        ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        calls = []

        def counting_forward(*args, calls=calls, forward=model.forward, **kwargs):
            calls.append(kwargs["input_ids"].shape)
            return forward(*args, **kwargs)

        model.forward = counting_forward
        try:
            [ours] = decode(model, ids, 40, eos)
        finally:
            del model.forward
        assert [ours] == plain_generate_tokens(model, tokenizer, [prompt], 40)
        assert len(calls) < len(ours), f"no guess was accepted: {len(calls)} passes"
        assert max(shape[1] for shape in calls[1:]) > 1  # passes carried guesses
