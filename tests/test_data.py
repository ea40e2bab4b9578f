"""Training data (bidir_cli/data/sources.py): sources read into Arrow, their rows chosen, validated and hashed
exactly as the row-by-row reader does."""

from __future__ import annotations

import json

from helpers import write_pairs


def test_sample_draws_a_fixed_random_subset_in_file_order(tmp_path):
    from bidir_cli.config.schema import SourceConfig
    from bidir_cli.data.sources import load_source

    rows = [{"anchor": f"query {i}", "positive": f"document {i}"} for i in range(50)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def anchors(**options):
        source = load_source(SourceConfig(source="d.jsonl", **options), tmp_path, "data.train.0")
        return source.dataset["anchor"], source.identity

    drawn, identity = anchors(sample=10)
    index = [int(a.split()[1]) for a in drawn]
    assert len(index) == 10 and index == sorted(index) and len(set(index)) == 10
    assert index != list(range(10))  # a sample, not the head of the file
    assert anchors(sample=10)[0] == drawn  # the same rows every time
    assert anchors(sample=10, sample_seed=1)[0] != drawn
    assert identity["rows"] == 10 and identity["sample"] == {"rows": 10, "seed": 0}
    assert anchors(sample=80)[0] == [r["anchor"] for r in rows]  # more than the file holds: every row


def test_sources_read_in_arrow_equal_the_row_by_row_reader(tmp_path):
    """The memory-light path (datasets' Arrow copy, validated and hashed in batches) against the row-by-row
    reader on every file kind, a folder, a limit and a sample: the same rows in the same order, the same identity
    (hash included)."""
    import csv as csv_module

    import pyarrow as pa
    import pyarrow.parquet as pq

    from bidir_cli.config.schema import SourceConfig
    from bidir_cli.data.sources import load_source, load_source_rows

    rows = write_pairs(tmp_path / "pairs.jsonl", n=120, negatives=2, seed=4)
    (tmp_path / "pairs.json").write_text(json.dumps(rows))
    with open(tmp_path / "pairs.csv", "w", newline="") as f:
        writer = csv_module.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet")
    (tmp_path / "folder").mkdir()
    write_pairs(tmp_path / "folder" / "a.jsonl", n=30, seed=5)
    write_pairs(tmp_path / "folder" / "b.jsonl", n=20, seed=6)
    cases = [dict(source=f"pairs.{kind}") for kind in ("jsonl", "json", "csv", "parquet")]
    cases += [
        dict(source="folder"),
        dict(source="pairs.jsonl", limit=17),
        dict(source="pairs.jsonl", sample=33, sample_seed=3),
    ]
    cases += [dict(source="pairs.jsonl", columns={"negatives": ["negative_2"]})]
    for case in cases:
        cfg = SourceConfig(**case)
        fast, rows_path = load_source(cfg, tmp_path, "data.train.0"), load_source_rows(cfg, tmp_path, "data.train.0")
        assert fast.dataset.column_names == rows_path.dataset.column_names, case
        assert fast.dataset.to_dict() == rows_path.dataset.to_dict(), case
        assert fast.identity == rows_path.identity, case
        assert fast.dataset.cache_files or case["source"] == "pairs.json", case  # memory-mapped, not Python rows
