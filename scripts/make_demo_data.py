"""Build the demo data bundled in bidir_cli/demo from WordNet 3.0 glosses (../shared/data/train).

    python scripts/make_demo_data.py [--shared ../shared/data]

Writes, deterministically (seeded):
  bidir_cli/demo/wordnet/train.jsonl      8,000 (anchor, positive) pairs: word(s) -> gloss
  bidir_cli/demo/wordnet-eval/            a BEIR collection: 300 held-out words as queries, their glosses
                                          among 3,000 documents (the other 2,700 glosses of other held-out
                                          synsets), one relevant document per query
  bidir_cli/demo/LICENSE-WordNet          the WordNet 3.0 licence, which must travel with the data
No held-out synset (query or document) appears in the training pairs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAIRS, EVAL_QUERIES, EVAL_DOCS = 8000, 300, 3000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    source = args.shared / "train" / "wordnet_glosses.jsonl"
    rows = [json.loads(line) for line in source.open(encoding="utf-8")]
    # One pair per gloss text and per anchor, so no query has two relevant documents by accident.
    seen_anchor, seen_gloss, unique = set(), set(), []
    for row in rows:
        if row["anchor"] not in seen_anchor and row["positive"] not in seen_gloss:
            seen_anchor.add(row["anchor"])
            seen_gloss.add(row["positive"])
            unique.append(row)
    random.Random(13).shuffle(unique)
    held_out, train = unique[:EVAL_DOCS], unique[EVAL_DOCS : EVAL_DOCS + TRAIN_PAIRS]

    demo = ROOT / "bidir_cli" / "demo"
    (demo / "wordnet").mkdir(parents=True, exist_ok=True)
    with (demo / "wordnet" / "train.jsonl").open("w", encoding="utf-8") as f:
        for row in train:
            f.write(json.dumps({"anchor": row["anchor"], "positive": row["positive"]}, ensure_ascii=False) + "\n")

    beir = demo / "wordnet-eval"
    (beir / "qrels").mkdir(parents=True, exist_ok=True)
    with (beir / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for i, row in enumerate(held_out):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": row["positive"]}, ensure_ascii=False) + "\n")
    with (beir / "queries.jsonl").open("w", encoding="utf-8") as f, (beir / "qrels" / "test.tsv").open("w") as q:
        q.write("query-id\tcorpus-id\tscore\n")
        for i, row in enumerate(held_out[:EVAL_QUERIES]):
            f.write(json.dumps({"_id": f"q{i}", "text": row["anchor"]}, ensure_ascii=False) + "\n")
            q.write(f"q{i}\td{i}\t1\n")
    shutil.copyfile(args.shared / "train" / "WORDNET-LICENSE", demo / "LICENSE-WordNet")
    print(f"wrote {len(train)} training pairs, {EVAL_QUERIES} queries over {EVAL_DOCS} documents into {demo}")


if __name__ == "__main__":
    main()
