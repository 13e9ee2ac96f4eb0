"""seq2seq: the generated sums, teacher forcing, greedy decoding, the held-out test sums."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ramie import nn
from ramie.examples import seq2seq


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_problems_are_correct_sums_padded_to_a_fixed_width(digits, seed):
    questions, answers = seq2seq.problems(16, digits, np.random.default_rng(seed))
    assert questions.shape == (16, 2 * digits + 1) and answers.shape == (16, digits + 1)
    for question, answer in zip(seq2seq.decode(questions), seq2seq.decode(answers), strict=True):
        a, b = question.split("+")
        assert int(a) + int(b) == int(answer) and len(a.strip()) <= digits
        assert answer == answer.strip().ljust(digits + 1)


def test_training_problems_avoid_the_excluded_sums():
    rng = np.random.default_rng(0)
    test_questions, _ = seq2seq.problems(50, 1, rng)  # 50 of the 100 one-digit sums
    unseen = seq2seq.pairs(test_questions)
    assert 30 < len(unseen) <= 50
    questions, _ = seq2seq.problems(40, 1, rng, exclude=unseen)
    assert len(questions) == 40 and not seq2seq.pairs(questions) & unseen


def model_and_batch():
    model = seq2seq.Seq2Seq(8, 16, rngs=nn.Rngs(0))
    questions, answers = seq2seq.problems(4, 3, np.random.default_rng(1))
    return model, jnp.asarray(questions), jnp.asarray(answers)


def test_teacher_forcing_reads_only_the_earlier_answer_characters():
    model, questions, answers = model_and_batch()
    logits = model(questions, answers)
    assert logits.shape == (4, 4, len(seq2seq.VOCAB))
    changed = answers.at[:, 2].set((answers[:, 2] + 1) % len(seq2seq.VOCAB))
    other = model(questions, changed)
    np.testing.assert_array_equal(logits[:, :3], other[:, :3])  # positions 0-2 do not see it
    assert not np.allclose(logits[:, 3], other[:, 3])  # position 3 reads character 2


def test_greedy_decoding_is_teacher_forcing_on_its_own_guesses():
    model, questions, _ = model_and_batch()
    guesses = seq2seq.predict(model, questions, length=4)
    assert guesses.shape == (4, 4)
    forced = model(questions, guesses)  # the decoder given its own previous guesses
    np.testing.assert_array_equal(forced.argmax(-1), guesses)


def test_the_encoder_reads_the_question_backwards():
    model, questions, answers = model_and_batch()
    assert model.encoder.reverse is True and model.decoder.reverse is False
    flipped = questions.at[:, 0].set(seq2seq.VOCAB.index("9"))  # the first character
    assert not np.allclose(model(questions, answers), model(flipped, answers))
