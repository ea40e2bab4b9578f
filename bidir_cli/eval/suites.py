"""Suites: named, ordered sets of retrieval datasets, from ``--suite`` (``nanobeir``, a NanoBEIR copy, a BEIR
folder or a suite YAML file)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, did_you_mean
from .loaders import (
    NANOBEIR_DATASETS,
    NANOBEIR_HUB_ID,
    check_hub_reachable,
    is_beir_folder,
    is_nanobeir_copy,
    load_beir_folder,
    load_nanobeir,
    nanobeir_split_names,
)
from .retrieval import RetrievalDataset, raise_problems

SUITE_KEYS = ("name", "description", "datasets")


@dataclass
class Suite:
    """A named, ordered set of datasets; each is loaded on demand by its loader.

    Attributes:
        name: The suite's name (results file ``eval/<name>.json`` of a run).
        source: What ``--suite`` named (``nanobeir``, a folder or a YAML file).
        loaders: Dataset name -> function loading it, in suite order.
        aliases: Other accepted spellings of dataset names for ``--datasets`` (lower case -> name).
        before_load: Run once before loading (for the hub: fail fast when it cannot be reached).
    """

    name: str
    source: str
    loaders: dict[str, Callable[[], RetrievalDataset]]
    aliases: dict[str, str] = field(default_factory=dict)
    before_load: Callable[[], None] | None = None

    def select(self, names: str | None) -> Suite:
        """The suite restricted to a comma-separated list of dataset names (case-insensitive)."""
        if not names:
            return self
        lookup = {n.lower(): n for n in self.loaders} | self.aliases
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n.lower() not in lookup]
        if unknown or not wanted:
            raise InputError(
                f"--datasets: {', '.join(unknown) or repr(names)} not in suite {self.name!r} "
                f"(it has: {', '.join(self.loaders)})"
            )
        chosen = list(dict.fromkeys(lookup[n.lower()] for n in wanted))
        return Suite(self.name, self.source, {n: self.loaders[n] for n in chosen}, self.aliases, self.before_load)

    def load(self) -> list[RetrievalDataset]:
        """Load every dataset (all of them before any model work, so bad input fails fast)."""
        if self.before_load:
            self.before_load()
        return [load() for load in self.loaders.values()]


def suite_spec(spec: str, base_dir: Path) -> str:
    """A suite as a config or an experiment file names it, made independent of the working directory: a path
    resolved against the file's folder (``nanobeir`` and ``demo:NAME`` as they are)."""
    if spec.lower() == "nanobeir" or spec.startswith("demo:"):
        return spec
    return str((base_dir / Path(spec).expanduser()).resolve())


def demo_suites() -> list[str]:
    """The evaluation collections bundled with bidir (``demo:NAME``): the BEIR folders under ``bidir_cli/demo``."""
    from ..demo import demo_path

    return sorted(p.name for p in demo_path("").iterdir() if (p / "corpus.jsonl").is_file())


def demo_suite(name: str) -> Path:
    """The folder of ``demo:NAME``; a name that is not one lists those that are."""
    from ..demo import demo_path

    known = demo_suites()
    if name.rstrip("/") not in known:
        listed = ", ".join(f"demo:{k}" for k in known)
        if not name:
            raise InputError(f"--suite demo:: name a bundled demo suite: {listed}")
        raise InputError(f"--suite demo:{name}: no such bundled suite{did_you_mean(name, known)}; bundled: {listed}")
    return demo_path(name.rstrip("/"))


def resolve_suite(spec: str) -> Suite:
    """Turn ``--suite`` into a :class:`Suite`: ``nanobeir``, a NanoBEIR copy, a BEIR folder, a suite YAML, or
    ``demo:<path>`` for data bundled with bidir (as in a config)."""
    if spec.lower() == "nanobeir":
        return _nanobeir_suite(NANOBEIR_HUB_ID, before_load=lambda: check_hub_reachable(NANOBEIR_HUB_ID))
    if spec.startswith("demo:"):
        return resolve_suite(str(demo_suite(spec.removeprefix("demo:"))))
    path = Path(spec).expanduser()
    if path.is_file():
        return load_suite_file(path)
    if path.is_dir():
        if is_beir_folder(path):
            name = path.resolve().name
            return Suite(name, str(path), {name: lambda: load_beir_folder(path, name)})
        if is_nanobeir_copy(path):
            return _nanobeir_suite(str(path))
        raise InputError(
            f"--suite {spec}: a folder, but neither a BEIR folder (no corpus.jsonl) "
            "nor a NanoBEIR copy (no corpus/, queries/ and qrels/ folders)"
        )
    raise InputError(
        f"--suite {spec}: no such file or folder (give 'nanobeir', a BEIR folder, a NanoBEIR copy or a suite YAML)"
    )


def _nanobeir_suite(source: str, before_load: Callable[[], None] | None = None) -> Suite:
    splits = nanobeir_split_names(source)
    short = {v: k for k, v in NANOBEIR_DATASETS.items()}
    aliases = {short[s]: s for s in splits if s in short}
    return Suite(
        "nanobeir",
        source,
        {split: (lambda split=split: load_nanobeir(source, split)) for split in splits},
        aliases,
        before_load,
    )


# The keys of a dataset entry given as a mapping; ``path`` is required.
DATASET_KEYS = ("path", "qrels", "query_prompt", "document_prompt")


def load_suite_file(path: str | os.PathLike) -> Suite:
    """Load a suite YAML: ``name`` (default: the file name), ``description``, ``datasets``: name -> BEIR folder,
    or name -> ``{path: FOLDER, qrels: SPLIT, query_prompt: TEXT, document_prompt: TEXT}`` (all but ``path``
    optional): ``qrels/SPLIT.tsv`` instead of ``qrels/test.tsv``, and the dataset's own prompts, which take
    precedence over ``bidir eval --query-prompt``/``--document-prompt`` and the model's prompts.

    Relative folders are resolved against the YAML file's own folder, so a suite works from any directory.
    """
    import yaml

    from ..config.schema import load_yaml

    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a suite file is a mapping with keys {', '.join(SUITE_KEYS)}")
    problems = []
    for key in data:
        if key not in SUITE_KEYS:
            problems.append(f"{key}: unknown key{did_you_mean(str(key), SUITE_KEYS)}")
    entries = data.get("datasets")
    if not isinstance(entries, dict) or not entries:
        problems.append("datasets: required, a mapping of dataset name -> BEIR folder")
        entries = {}
    specs: dict[str, tuple[str, str, dict[str, str]]] = {}
    for name, entry in entries.items():
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            unknown = [k for k in entry if k not in DATASET_KEYS]
            for key in unknown:
                problems.append(f"datasets.{name}.{key}: unknown key{did_you_mean(str(key), DATASET_KEYS)}")
            prompts = {}
            for kind in ("query", "document"):
                value = entry.get(f"{kind}_prompt")
                if value is not None and not isinstance(value, str):
                    problems.append(f"datasets.{name}.{kind}_prompt: expected a string")
                elif value is not None:
                    prompts[kind] = value
            if not unknown:
                specs[str(name)] = (entry["path"], str(entry.get("qrels", "test")), prompts)
        elif isinstance(entry, str):
            specs[str(name)] = (entry, "test", {})
        else:
            problems.append(
                f"datasets.{name}: expected a folder path, or a mapping with path (and optionally qrels, a split "
                "name, query_prompt and document_prompt)"
            )
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        problems.append("name: expected a non-empty string")
    raise_problems(str(path), [f"{path}: {p}" for p in problems], what="an invalid suite file")

    def loader(dataset: str, folder: Path, qrels: str, prompts: dict[str, str]) -> Callable[[], RetrievalDataset]:
        def load() -> RetrievalDataset:
            try:
                loaded = load_beir_folder(folder, dataset, qrels=qrels)
            except InputError as e:
                # Name the suite entry too: the folder alone does not say which line of the YAML to fix.
                raise InputError(f"{path}: datasets.{dataset}: {e.args[0]}", problems=e.problems) from None
            loaded.prompts = dict(prompts)
            return loaded

        return load

    base = path.resolve().parent
    loaders = {k: loader(k, base / Path(folder).expanduser(), qrels, prompts)
               for k, (folder, qrels, prompts) in specs.items()}  # fmt: skip
    return Suite(name, str(path), loaders)
