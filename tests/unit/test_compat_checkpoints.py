"""Checkpoints written before the one-step redesign (issue 12) load and behave unchanged.

tests/fixtures/compat/ holds tiny checkpoints of every model family (davam_tiny, gavam_tiny,
vae_attn_tiny, davam_q_tiny, awd_tiny and a davam_prior_tiny fitted to davam_tiny) saved by
``fairseq-train`` with the code of commit baa2cae, and ``expected.json``: their outputs on
fixed inputs computed by that code (see make_fixture.py, which holds the computation: loading
through fairseq's ``checkpoint_utils.load_model_ensemble_and_task`` and through
``davam_plugin.loading``, the criterion's logged values on a fixed validation batch, the codes
chosen, greedy and sampled reconstructions, sentences from each model's prior with
``--sample-from-prior`` and stage-two code samples). Here the same computation runs with the
code under test: tokens and codes must be equal, floats equal to 1e-6 relative.
"""

import json
import math
from pathlib import Path

import pytest

import davam_plugin  # noqa: F401
from helpers import load_script

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "compat"


def _make_fixture_module():
    return load_script(FIXTURE / "make_fixture.py", "compat_make_fixture")


MAKE = _make_fixture_module()
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def assert_same(got, want, where="outputs"):
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {got} != {want}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def test_fixture_is_small_and_complete():
    files = {p.name for p in FIXTURE.iterdir()}
    names = [*MAKE.SENTENCE_MODELS, "davam_prior_tiny"]
    assert {f"{n}.pt" for n in names} <= files and {"expected.json", "make_fixture.py"} <= files
    assert sorted(EXPECTED) == sorted(names)
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 2 * 1024 * 1024


def test_assert_same_catches_differences():
    """The comparison is not vacuous: a changed token, code or float fails it."""
    want = EXPECTED["davam_tiny"]
    for key, change in (("greedy", lambda o: o[0].__setitem__(0, o[0][0] + 1)),
                        ("codes", lambda o: o[1].__setitem__(0, o[1][0] + 1)),
                        ("criterion", lambda o: o.__setitem__("rec", o["rec"] * (1 + 1e-5)))):  # fmt: skip
        got = json.loads(json.dumps(want))
        change(got[key])
        with pytest.raises(AssertionError):
            assert_same(got, want)


@pytest.mark.parametrize("name", list(MAKE.SENTENCE_MODELS))
def test_sentence_model_checkpoint(name):
    got = MAKE.sentence_model_outputs(name, FIXTURE)
    want = {k: v for k, v in EXPECTED[name].items() if k != "prior_samples"}
    assert_same(got, want, name)


@pytest.mark.parametrize("name", ["davam_tiny", "gavam_tiny", "vae_attn_tiny", "awd_tiny"])
def test_samples_from_prior(name):
    assert_same(MAKE.prior_sample_outputs(name, FIXTURE), EXPECTED[name]["prior_samples"], f"{name}.prior_samples")


def test_stage_two_prior_checkpoint():
    assert_same(MAKE.stage_two_outputs(FIXTURE), EXPECTED["davam_prior_tiny"], "davam_prior_tiny")
