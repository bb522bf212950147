"""Before/after: damo's evaluator at an older commit vs the official scorers vs damo now, on the parity
fixtures of tests/unit/eval/parity (official values: their expected.json, from scripts/parity_official.py).

    python benchmarks/eval_parity.py --before def5677

Object HalBench: CHAIRs_refine ("Resp."), CHAIRs, CHAIRi ("Ment."), recall, and the number of answers
whose mentioned/hallucinated/truth sets differ from the official ones. AMBER generative: CHAIR, Cover,
Hal, Cog in percent (damo now with the stand-ins for the two resources this machine lacks; damo before
had neither a tagger nor a similarity step). AMBER discriminative and POPE: accuracy and F1.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / "tests" / "unit" / "eval" / "parity"
sys.path.insert(0, str(ROOT / "tests" / "unit" / "eval"))

from evalfiles import context  # noqa: E402

from damo.eval import amber, items  # noqa: E402


def _module_at(rev: str, name: str, tmp: Path) -> types.ModuleType:
    """``damo.eval.<name>`` as it was at ``rev``, registered under its own name while loaded."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:damo/eval/{name}.py"], check=True,
                            capture_output=True, text=True).stdout
    path = tmp / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"damo.eval.{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"damo.eval.{name}"] = module
    spec.loader.exec_module(module)
    return module


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def object_halbench(module: types.ModuleType, tmp: Path) -> dict[str, Any]:
    fx = PARITY / "object_halbench"
    ctx = context(tmp, [f"evaluate.data.coco_annotations={fx / 'coco'}",
                        f"evaluate.data.coco_synonyms={fx / 'synonyms.txt'}"], generate=False)
    m = module.score(ctx, [], _jsonl(fx / "answers.jsonl"), "g")
    official = json.loads((fx / "expected.json").read_text())["sentences"]
    differ = sum(d["mentions"] != s["generated"] or d["truth"] != s["gt"]
                 or d["hallucinated"] != [[w, c] for w, (_, c) in s["hallucinated"]]
                 for d, s in zip(_jsonl(ctx.out / "details.g.jsonl"), official))
    return {"CHAIRs_refine": m["chair_response"], "CHAIRs": m["chair_s"], "CHAIRi": m["chair_mention"],
            "recall": m["object_recall"], "answers_differing": differ}


def _amber_inputs() -> tuple[Any, ...]:
    fx = PARITY / "amber"
    read = lambda name: json.loads((fx / name).read_text())  # noqa: E731
    safe = {w.strip() for w in (fx / "data" / "safe_words.txt").read_text().splitlines() if w.strip()}
    return fx, read, safe


def amber_before(module: types.ModuleType, tmp: Path) -> dict[str, Any]:
    fx, read, _ = _amber_inputs()
    responses = read("responses.json")
    ctx = context(tmp, [f"evaluate.data.amber={fx / 'data'}", "evaluate.amber_answer_parse=exact"],
                  generate=False)
    its = [items.EvalItem(str(r["id"]), "", Path("")) for r in responses]
    return _amber_summary(module.score(ctx, its, responses, "amber"))


def amber_now() -> dict[str, Any]:
    _, read, safe = _amber_inputs()
    spec = importlib.util.spec_from_file_location("standins", PARITY / "standins.py")
    assert spec and spec.loader
    standins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standins)
    scorer = amber.GenerativeScorer(read("data/relation.json"), safe,
                                    amber.nltk_nouns(standins.LookupTagger(read("tags.json"))),
                                    amber.spacy_similarity(standins.VectorNlp(read("vectors.json"))), 0.8)
    responses = [(str(r["id"]), r["response"]) for r in read("responses.json")]
    metrics, _ = amber.evaluate(read("data/annotations.json"), responses, scorer, "exact")
    return _amber_summary(metrics)


def _amber_summary(m: dict[str, Any]) -> dict[str, Any]:
    g, d = m["generative"], m["discriminative"]
    out = {k.upper(): round(100 * g[k], 1) for k in ("chair", "cover", "hal", "cog")}
    return {**out, "ACC": round(100 * d["accuracy"], 1), "F1": round(100 * d["f1"], 1)}


def amber_official() -> dict[str, Any]:
    printed = json.loads((PARITY / "amber" / "expected.json").read_text())["printed"]
    g, d = printed["Generative Task"], printed["Descriminative Task"]
    return {"CHAIR": g["CHAIR"], "COVER": g["Cover"], "HAL": g["Hal"], "COG": g["Cog"],
            "ACC": d["Accuracy"], "F1": d["F1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="def5677", help="git revision of 'damo before'")
    args = parser.parse_args()
    from damo.eval import object_halbench as now

    official = json.loads((PARITY / "object_halbench" / "expected.json").read_text())["overall"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = {"damo now": object_halbench(now, Path(tmp) / "now"), "amber now": amber_now()}
        saved = {k: v for k, v in sys.modules.items() if k.startswith("damo.eval.")}
        for name in ("chair", "pope"):
            _module_at(args.before, name, Path(tmp))
        before_oh = _module_at(args.before, "object_halbench", Path(tmp))
        before_amber = _module_at(args.before, "amber", Path(tmp))
        rows["damo before"] = object_halbench(before_oh, Path(tmp) / "before")
        rows["amber before"] = amber_before(before_amber, Path(tmp) / "amber_before")
        sys.modules.update(saved)
    print(f"Object HalBench CHAIR (fixtures: {PARITY / 'object_halbench'})")
    rows["official"] = {"CHAIRs_refine": official["CHAIRs_refine"], "CHAIRs": official["CHAIRs"],
                        "CHAIRi": official["CHAIRi"], "recall": official["obj_rec"], "answers_differing": 0}
    for name in (f"damo before ({args.before})", "official", "damo now"):
        r = rows[name.split(" (")[0]]
        print(f"  {name:<22} Resp {r['CHAIRs_refine']:.4f}  CHAIRs {r['CHAIRs']:.4f}  "
              f"Ment {r['CHAIRi']:.4f}  recall {r['recall']:.4f}  answers differing {r['answers_differing']}")
    print("AMBER (percent; damo now with the stand-in tagger and similarity the official run used)")
    rows["amber official"] = amber_official()
    for name in ("amber before", "amber official", "amber now"):
        print(f"  {name:<22} " + "  ".join(f"{k} {v}" for k, v in rows[name].items()))


if __name__ == "__main__":
    main()
