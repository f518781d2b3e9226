"""``davam-demo-corpus``: generate a small, synthetic English-like demo corpus for text-VAE experiments.

The sentences come from a hand-written probabilistic context-free grammar
(defined below; no external text is used).  The grammar covers

* noun phrases with determiners, optional adjectives, prepositional phrases
  and (occasionally) subject or object relative clauses,
* proper names, subject/object pronouns and coordinated subjects,
* transitive and intransitive verbs in five tenses (present, past, future,
  present and past progressive) with subject-verb number agreement and
  optional negation,
* manner adverbs and tense-compatible time adverbials,
* clause coordination/subordination (``and``, ``but``, ``because``, ...),
* yes/no questions and ``who`` / ``what`` / ``where`` questions.

The output is lower-cased and tokenized by whitespace, with punctuation as
separate tokens, e.g. ``the small dog sees a red ball .``.  Everything is
driven by a single ``random.Random(seed)``, so a seed fully determines the
corpus.  Held-out splits (valid, test) only contain sentences that do not
occur in the training split (and the test split none of the validation split).

Usage::

    davam-demo-corpus --out-dir data/demo [--seed 1]
        [--train 4000] [--valid 300] [--test 203]

The generator only uses the standard library; the module exposes
:func:`generate_corpus` for programmatic use.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from typing import Sequence

# ---------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------

SG, PL = "sg", "pl"

#: Nouns grouped by semantic class: (singular, plural).
NOUNS: dict[str, list[tuple[str, str]]] = {
    "person": [
        ("man", "men"), ("woman", "women"), ("child", "children"),
        ("boy", "boys"), ("girl", "girls"), ("teacher", "teachers"),
        ("farmer", "farmers"), ("doctor", "doctors"), ("sailor", "sailors"),
    ],
    "animal": [
        ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"),
        ("horse", "horses"), ("fox", "foxes"), ("mouse", "mice"),
        ("rabbit", "rabbits"), ("duck", "ducks"),
    ],
    "thing": [
        ("ball", "balls"), ("box", "boxes"), ("key", "keys"), ("cup", "cups"),
        ("hat", "hats"), ("lamp", "lamps"), ("boat", "boats"),
    ],
    "food": [("apple", "apples"), ("cake", "cakes"), ("egg", "eggs"),
             ("orange", "oranges")],
    "text": [("book", "books"), ("letter", "letters"), ("story", "stories"),
             ("map", "maps")],
    "place": [
        ("house", "houses"), ("garden", "gardens"), ("river", "rivers"),
        ("forest", "forests"), ("park", "parks"), ("village", "villages"),
        ("road", "roads"), ("kitchen", "kitchens"),
    ],
}
ANIMATE = ("person", "animal")
ANY = tuple(NOUNS)

NAMES = ["anna", "ben", "clara", "david", "emma", "tom"]

#: Pronouns by number: (subject form, object form).
PRONOUNS = {SG: [("he", "him"), ("she", "her")], PL: [("they", "them")]}

ADJECTIVES = [
    "small", "big", "old", "young", "red", "blue", "green", "brown", "happy",
    "sad", "quiet", "tired", "clever", "heavy", "new", "cold", "dark",
    "strange", "lazy", "angry",
]
#: Adjectives that read naturally as predicates of animate subjects.
PREDICATE_ADJ_ANIMATE = ["happy", "sad", "quiet", "tired", "clever", "lazy",
                         "angry", "young", "old", "small", "big"]
#: ... and of inanimate subjects.
PREDICATE_ADJ_THING = ["small", "big", "old", "new", "red", "blue", "green",
                       "brown", "heavy", "cold", "dark", "strange"]

DETERMINERS = {
    SG: ["the", "the", "the", "a", "a", "this", "that", "every", "my", "our"],
    PL: ["the", "the", "the", "some", "these", "those", "many", "two",
         "three", "my", "our"],
}

PREPOSITIONS = ["in", "on", "near", "under", "behind", "with", "from", "by"]
#: Prepositions that introduce a location after a verb phrase.
LOCATIVE_PREPOSITIONS = ["in", "near", "behind", "by"]

MANNER_ADVERBS = ["quickly", "slowly", "quietly", "happily", "carefully",
                  "again"]

#: Tense-compatible time adverbials (possibly multi-word).
TIME_ADVERBIALS = {
    "present": ["usually", "often", "sometimes", "every day"],
    "past": ["yesterday", "last night", "earlier", "once"],
    "future": ["tomorrow", "soon", "later", "next week"],
    "present_prog": ["now", "right now", "today"],
    "past_prog": ["yesterday", "last night"],
}
#: Adverbials that are only placed at the start of a sentence.
INITIAL_ONLY_ADVERBIALS = {"usually", "often", "sometimes"}
TENSES = ["present", "past", "future", "present_prog", "past_prog"]
TENSE_WEIGHTS = [0.36, 0.32, 0.12, 0.1, 0.1]

CLAUSE_CONJUNCTIONS = ["and", "but", "because", "while", "so"]


class Verb:
    """A verb with its inflected forms and selectional preferences."""

    def __init__(self, base: str, third: str, past: str, ing: str,
                 subj: Sequence[str] = ANIMATE,
                 obj: Sequence[str] | None = None) -> None:
        self.base, self.third, self.past, self.ing = base, third, past, ing
        self.subj = tuple(subj)
        # ``obj`` is None for intransitive verbs.
        self.obj = tuple(obj) if obj is not None else None


TRANSITIVE_VERBS = [
    Verb("see", "sees", "saw", "seeing", obj=ANY),
    Verb("find", "finds", "found", "finding", obj=ANY),
    Verb("like", "likes", "liked", "liking", obj=ANY),
    Verb("want", "wants", "wanted", "wanting", obj=("thing", "food", "text")),
    Verb("carry", "carries", "carried", "carrying",
         obj=("thing", "food", "text", "animal")),
    Verb("follow", "follows", "followed", "following", obj=ANIMATE),
    Verb("watch", "watches", "watched", "watching", obj=ANIMATE),
    Verb("help", "helps", "helped", "helping", obj=ANIMATE),
    Verb("chase", "chases", "chased", "chasing", obj=("animal",)),
    Verb("visit", "visits", "visited", "visiting", subj=("person",),
         obj=("person", "place")),
    Verb("read", "reads", "read", "reading", subj=("person",), obj=("text",)),
    Verb("write", "writes", "wrote", "writing", subj=("person",),
         obj=("text",)),
    Verb("eat", "eats", "ate", "eating", obj=("food",)),
    Verb("bring", "brings", "brought", "bringing",
         obj=("thing", "food", "text")),
]

INTRANSITIVE_VERBS = [
    Verb("sleep", "sleeps", "slept", "sleeping"),
    Verb("run", "runs", "ran", "running"),
    Verb("walk", "walks", "walked", "walking"),
    Verb("sing", "sings", "sang", "singing"),
    Verb("laugh", "laughs", "laughed", "laughing", subj=("person",)),
    Verb("wait", "waits", "waited", "waiting"),
    Verb("dance", "dances", "danced", "dancing", subj=("person",)),
    Verb("swim", "swims", "swam", "swimming"),
    Verb("play", "plays", "played", "playing"),
    Verb("rest", "rests", "rested", "resting"),
]

#: Maximum nesting depth of noun phrases (PPs and relative clauses).
MAX_DEPTH = 3
#: Sentences outside this token-length range are rejected and resampled.
MIN_LEN, MAX_LEN = 4, 35

VOWELS = "aeiou"


# ---------------------------------------------------------------------------
# Grammar
# ---------------------------------------------------------------------------


class SentenceGenerator:
    """Samples sentences (lists of tokens) from the PCFG using ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    # -- small helpers -----------------------------------------------------

    def _p(self, prob: float) -> bool:
        """Return True with probability ``prob``."""
        return self.rng.random() < prob

    def _choice(self, seq):
        return self.rng.choice(seq)

    # -- noun phrases --------------------------------------------------------

    def noun_phrase(self, depth: int, number: str, classes: Sequence[str],
                    case: str = "subj", allow_light: bool = True,
                    ) -> list[str]:
        """A noun phrase of the given number whose head is in ``classes``.

        ``case`` selects the pronoun form ("subj" or "obj").  Names and
        pronouns are only used for animate classes and when ``allow_light``.
        """
        rng = self.rng
        if allow_light and "person" in classes and depth < MAX_DEPTH:
            r = rng.random()
            if number == SG and r < 0.12:
                return [self._choice(NAMES)]
            if r < 0.18:
                subj, obj = self._choice(PRONOUNS[number])
                return [subj if case == "subj" else obj]

        cls = self._choice(list(classes))
        sg, pl = self._choice(NOUNS[cls])
        tokens = [self._choice(DETERMINERS[number])]
        if self._p(0.35):
            tokens.append(self._choice(ADJECTIVES))
            if self._p(0.15):
                second = self._choice(ADJECTIVES)
                if second != tokens[-1]:
                    tokens.append(second)
        tokens.append(sg if number == SG else pl)

        if depth < MAX_DEPTH:
            if self._p(0.22 * 0.5 ** depth):
                tokens += self.prep_phrase(depth + 1)
            if depth < MAX_DEPTH - 1 and self._p(0.1 * 0.5 ** depth):
                tokens += self.relative_clause(depth + 1, number, cls)
        return tokens

    def prep_phrase(self, depth: int, locative: bool = False) -> list[str]:
        """A prepositional phrase ``P NP``."""
        if locative:
            prep = self._choice(LOCATIVE_PREPOSITIONS)
            classes: Sequence[str] = ("place",)
        else:
            prep = self._choice(PREPOSITIONS)
            classes = ("place", "thing", "person", "animal")
        number = SG if self._p(0.7) else PL
        return [prep] + self.noun_phrase(depth, number, classes, case="obj")

    def relative_clause(self, depth: int, number: str, head_cls: str,
                        ) -> list[str]:
        """A subject or object relative clause modifying a noun of ``head_cls``."""
        rel = "who" if head_cls == "person" else "that"
        tense = self._tense()
        if head_cls in ANIMATE and self._p(0.5):
            # Subject relative: "the dog that chases the cat".
            verbs = [v for v in TRANSITIVE_VERBS + INTRANSITIVE_VERBS
                     if head_cls in v.subj]
            verb = self._choice(verbs)
            return [rel] + self.verb_phrase(depth, verb, number, tense,
                                            allow_extras=False)
        # Object relative: "the ball that the boy found".
        verbs = [v for v in TRANSITIVE_VERBS if v.obj and head_cls in v.obj]
        if not verbs:
            return []
        verb = self._choice(verbs)
        subj_number = SG if self._p(0.65) else PL
        subj = self.noun_phrase(depth, subj_number, verb.subj, case="subj")
        return ["that"] + subj + self.verb_group(verb, subj_number, tense)

    # -- verb phrases --------------------------------------------------------

    def _tense(self) -> str:
        return self.rng.choices(TENSES, TENSE_WEIGHTS)[0]

    def verb_group(self, verb: Verb, number: str, tense: str,
                   negate: bool = False) -> list[str]:
        """The inflected verb (with auxiliaries) agreeing with ``number``."""
        if tense == "present":
            if negate:
                return ["does" if number == SG else "do", "not", verb.base]
            return [verb.third if number == SG else verb.base]
        if tense == "past":
            return ["did", "not", verb.base] if negate else [verb.past]
        if tense == "future":
            return ["will", "not", verb.base] if negate else ["will", verb.base]
        if tense == "present_prog":
            aux = "is" if number == SG else "are"
        else:
            aux = "was" if number == SG else "were"
        return [aux, "not", verb.ing] if negate else [aux, verb.ing]

    def verb_phrase(self, depth: int, verb: Verb, number: str, tense: str,
                    allow_extras: bool = True) -> list[str]:
        """Verb group, object (if transitive) and optional modifiers."""
        tokens = self.verb_group(verb, number, tense,
                                 negate=allow_extras and self._p(0.08))
        if verb.obj is not None:
            obj_number = SG if self._p(0.65) else PL
            tokens += self.noun_phrase(depth, obj_number, verb.obj, case="obj")
        if allow_extras:
            if verb.obj is None and self._p(0.35):
                tokens += self.prep_phrase(depth + 1, locative=True)
            if self._p(0.15):
                tokens.append(self._choice(MANNER_ADVERBS))
        return tokens

    def copula_phrase(self, number: str, tense: str, animate: bool,
                      ) -> list[str]:
        """``is happy`` / ``were not tired`` / ``will be old``."""
        adj = self._choice(PREDICATE_ADJ_ANIMATE if animate
                           else PREDICATE_ADJ_THING)
        neg = ["not"] if self._p(0.1) else []
        if tense == "future":
            return ["will"] + neg + ["be", adj]
        if tense in ("past", "past_prog"):
            aux = "was" if number == SG else "were"
        else:
            aux = "is" if number == SG else "are"
        return [aux] + neg + [adj]

    # -- clauses and sentences -----------------------------------------------

    def subject(self, classes: Sequence[str]) -> tuple[list[str], str]:
        """A subject noun phrase and its grammatical number."""
        if self._p(0.07):
            # Coordinated subject: always plural.
            left = self.noun_phrase(1, SG if self._p(0.7) else PL, classes)
            right = self.noun_phrase(1, SG if self._p(0.7) else PL, classes)
            return left + ["and"] + right, PL
        number = SG if self._p(0.6) else PL
        return self.noun_phrase(0, number, classes), number

    def clause(self, with_time: bool = True) -> list[str]:
        """A declarative clause, possibly with a time adverbial."""
        tense = self._tense()
        if self._p(0.12):
            animate = self._p(0.5)
            classes = ANIMATE if animate else ("thing", "food", "place")
            subj, number = self.subject(classes)
            tokens = subj + self.copula_phrase(number, tense, animate)
        else:
            transitive = self._p(0.6)
            verb = self._choice(TRANSITIVE_VERBS if transitive
                                else INTRANSITIVE_VERBS)
            subj, number = self.subject(verb.subj)
            tokens = subj + self.verb_phrase(0, verb, number, tense)
            # Occasional verb-phrase coordination with the same subject.
            if self._p(0.06):
                verb2 = self._choice([v for v in INTRANSITIVE_VERBS
                                      if set(verb.subj) <= set(v.subj)])
                tokens += ["and"] + self.verb_phrase(1, verb2, number, tense,
                                                     allow_extras=False)
        if with_time and self._p(0.15):
            phrase = self._choice(TIME_ADVERBIALS[tense])
            adverbial = phrase.split()
            if phrase in INITIAL_ONLY_ADVERBIALS or self._p(0.5):
                tokens = adverbial + [","] + tokens
            else:
                tokens = tokens + adverbial
        return tokens

    def question(self) -> list[str]:
        """A yes/no or wh-question (without the final ``?``)."""
        kind = self.rng.choices(
            ["yesno", "copula", "wh_subj", "wh_obj", "where"],
            [0.3, 0.15, 0.2, 0.2, 0.15])[0]
        number = SG if self._p(0.6) else PL
        tense = self.rng.choices(["present", "past", "future"],
                                 [0.45, 0.4, 0.15])[0]
        if kind == "copula":
            animate = self._p(0.5)
            classes = ANIMATE if animate else ("thing", "food", "place")
            adj = self._choice(PREDICATE_ADJ_ANIMATE if animate
                               else PREDICATE_ADJ_THING)
            subj = self.noun_phrase(1, number, classes)
            if tense == "future":
                return ["will"] + subj + ["be", adj]
            if tense == "past":
                aux = "was" if number == SG else "were"
            else:
                aux = "is" if number == SG else "are"
            return [aux] + subj + [adj]

        if kind == "wh_subj":
            # "who sees the cat", "who found a key" -- singular agreement.
            verb = self._choice(TRANSITIVE_VERBS + INTRANSITIVE_VERBS)
            return ["who"] + self.verb_phrase(1, verb, SG, tense,
                                              allow_extras=False)

        if kind == "wh_obj":
            verb = self._choice(TRANSITIVE_VERBS)
            wh = "who" if set(verb.obj or ()) <= set(ANIMATE) else "what"
        else:
            verb = self._choice(TRANSITIVE_VERBS + INTRANSITIVE_VERBS)
            wh = "where" if kind == "where" else None

        if tense == "present":
            aux = "does" if number == SG else "do"
        elif tense == "past":
            aux = "did"
        else:
            aux = "will"
        subj = self.noun_phrase(1, number, verb.subj)
        tokens = ([wh] if wh else []) + [aux] + subj + [verb.base]
        if kind == "yesno" and verb.obj is not None:
            obj_number = SG if self._p(0.65) else PL
            tokens += self.noun_phrase(1, obj_number, verb.obj, case="obj")
        return tokens

    def sentence(self) -> list[str]:
        """One complete sentence with final punctuation."""
        r = self.rng.random()
        if r < 0.12:
            tokens = self.question() + ["?"]
        elif r < 0.24:
            first = self.clause(with_time=False)
            conj = self._choice(CLAUSE_CONJUNCTIONS)
            tokens = first + ([","] if conj in ("but", "so") else []) + \
                [conj] + self.clause(with_time=False) + ["."]
        else:
            tokens = self.clause() + ["."]
        return fix_articles(tokens)


def fix_articles(tokens: list[str]) -> list[str]:
    """Replace ``a`` by ``an`` before words that start with a vowel."""
    out = list(tokens)
    for i in range(len(out) - 1):
        if out[i] == "a" and out[i + 1][0] in VOWELS:
            out[i] = "an"
    return out


# ---------------------------------------------------------------------------
# Corpus generation
# ---------------------------------------------------------------------------


def sample_sentence(gen: SentenceGenerator) -> str:
    """Sample sentences until one has an acceptable length; return it as text."""
    while True:
        tokens = gen.sentence()
        if MIN_LEN <= len(tokens) <= MAX_LEN:
            return " ".join(tokens)


def _sample_heldout(gen: SentenceGenerator, n: int, exclude: set[str],
                    name: str) -> list[str]:
    """Sample ``n`` sentences that are not in ``exclude``."""
    out: list[str] = []
    max_tries = 50 * n + 1000
    tries = 0
    while len(out) < n:
        if tries >= max_tries:
            raise RuntimeError(
                f"could only sample {len(out)} of {n} {name} sentences that "
                f"do not occur in earlier splits after {max_tries} tries; "
                "request fewer sentences")
        tries += 1
        sent = sample_sentence(gen)
        if sent not in exclude:
            out.append(sent)
    return out


def generate_corpus(seed: int = 1, n_train: int = 4000, n_valid: int = 300,
                    n_test: int = 203) -> dict[str, list[str]]:
    """Generate the demo corpus.

    Returns a dict with keys ``"train"``, ``"valid"`` and ``"test"`` mapping
    to lists of whitespace-tokenized sentences.  Validation sentences never
    occur in train; test sentences occur neither in train nor in valid.
    Raises ``ValueError`` for negative sizes and ``RuntimeError`` if the
    held-out splits cannot be filled with unseen sentences.
    """
    for name, n in (("n_train", n_train), ("n_valid", n_valid),
                    ("n_test", n_test)):
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    gen = SentenceGenerator(random.Random(seed))
    train = [sample_sentence(gen) for _ in range(n_train)]
    seen = set(train)
    valid = _sample_heldout(gen, n_valid, seen, "valid")
    test = _sample_heldout(gen, n_test, seen | set(valid), "test")
    return {"train": train, "valid": valid, "test": test}


def corpus_stats(corpus: dict[str, list[str]]) -> tuple[int, float]:
    """Vocabulary size and mean sentence length (tokens) over all splits."""
    vocab: set[str] = set()
    n_tokens = n_sents = 0
    for sents in corpus.values():
        for sent in sents:
            toks = sent.split()
            vocab.update(toks)
            n_tokens += len(toks)
            n_sents += 1
    return len(vocab), (n_tokens / n_sents if n_sents else 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="davam-demo-corpus",
        description="Write a small synthetic English-like corpus "
                    "(train/valid/test .txt, one tokenized, lower-cased "
                    "sentence per line) sampled from a built-in grammar.")
    parser.add_argument("--out-dir", required=True,
                        help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=1,
                        help="random seed (default: 1)")
    parser.add_argument("--train", type=int, default=4000,
                        help="number of training sentences (default: 4000)")
    parser.add_argument("--valid", type=int, default=300,
                        help="number of validation sentences (default: 300)")
    parser.add_argument("--test", type=int, default=203,
                        help="number of test sentences (default: 203)")
    args = parser.parse_args(argv)
    for opt in ("train", "valid", "test"):
        if getattr(args, opt) < 0:
            parser.error(f"--{opt} must be >= 0")

    try:
        corpus = generate_corpus(args.seed, args.train, args.valid, args.test)
    except RuntimeError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1

    from davam_plugin.cli.common import write_lines

    os.makedirs(args.out_dir, exist_ok=True)
    for split, sents in corpus.items():
        write_lines(os.path.join(args.out_dir, f"{split}.txt"), sents)

    vocab_size, mean_len = corpus_stats(corpus)
    print(f"wrote {args.out_dir}: train={len(corpus['train'])} "
          f"valid={len(corpus['valid'])} test={len(corpus['test'])} "
          f"sentences, vocab={vocab_size} types, "
          f"mean length={mean_len:.2f} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
