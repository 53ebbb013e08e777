"""Encoder: backends and their export cache, numerics in the manifest, thread safety, load errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ragloom.retrieval import CorpusSpec, Encoder, EncoderSpec, Index, build_index
from ragloom.retrieval.encoder import resolve_encoder
from ragloom.retrieval.encoder_backends import exported_model_dir, model_file, require_backend
from test_index import KNOWN_QUERIES

from ragloom.errors import IndexMismatchError, MissingDependencyError, OutputError, RagloomError

OPTIONAL = [("onnx", None), ("onnx", "int8"), ("openvino", None)]


def _ragloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragloom", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(autouse=True)
def _cache_in_tmp(export_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_CACHE_DIR", str(export_cache))


def _need(backend: str) -> None:
    try:
        require_backend(backend)
    except MissingDependencyError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("backend,quantize", OPTIONAL, ids=["onnx", "onnx-int8", "openvino"])
def test_each_backend_builds_an_index_that_answers_the_known_queries(
    backend: str, quantize: str | None, wiki_corpus: Path, tmp_path: Path
) -> None:
    _need(backend)
    m = build_index(
        CorpusSpec(str(wiki_corpus)), tmp_path / "idx", encoder=EncoderSpec(backend=backend, quantize=quantize)
    )
    assert (m["encoder"]["backend"], m["encoder"]["quantize"]) == (backend, quantize)
    index = Index(tmp_path / "idx")
    assert index.encoder.spec.backend == backend and index.encoder.spec.quantize == quantize
    for (query, article), hits in zip(KNOWN_QUERIES.items(), index.search(list(KNOWN_QUERIES), k=5)):
        assert article in [h.passage.id for h in hits], f"{backend} {quantize}: {query!r}"


@pytest.mark.parametrize("backend,quantize", OPTIONAL[:2], ids=["onnx", "onnx-int8"])
def test_a_second_load_reuses_the_cached_export(backend: str, quantize: str | None) -> None:
    _need(backend)
    load_path = resolve_encoder("all-MiniLM-L6-v2")[1]
    first = exported_model_dir(load_path, backend, quantize, offline=True)
    made = (first / model_file(backend, quantize)).stat().st_mtime_ns
    enc = Encoder(EncoderSpec(backend=backend, quantize=quantize))
    enc.encode_queries(["warm"])
    assert exported_model_dir(load_path, backend, quantize, offline=True) == first
    assert (first / model_file(backend, quantize)).stat().st_mtime_ns == made


def test_a_backend_whose_package_is_missing_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, wiki_corpus: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "optimum.onnxruntime", None)  # importing it now raises ImportError
    with pytest.raises(
        MissingDependencyError, match=r"encoder_backend onnx needs optimum .*pip install 'ragloom\[onnx\]'"
    ) as e:
        build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "idx", encoder=EncoderSpec(backend="onnx"), limit=5)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "idx").exists()


def test_the_manifest_records_the_torch_backend_and_no_quantisation(wiki_index: Path) -> None:
    enc = json.loads((wiki_index / "manifest.json").read_text())["encoder"]
    assert enc["backend"] == "torch" and enc["quantize"] is None


def test_querying_with_int8_numerics_an_index_built_in_fp32_is_a_one_line_error(wiki_index: Path) -> None:
    with pytest.raises(IndexMismatchError, match="built with encoder_backend torch; querying it with onnx int8") as e:
        Index(wiki_index, encoder_backend="onnx", quantize="int8")
    assert "\n" not in str(e.value)


def test_an_fp32_torch_index_may_be_queried_through_onnx_fp32_but_not_openvino(wiki_index: Path) -> None:
    spec = Index(wiki_index, encoder_backend="onnx").encoder_spec
    assert (spec.backend, spec.quantize) == ("onnx", None)
    with pytest.raises(IndexMismatchError, match="querying it with openvino would change results"):
        Index(wiki_index, encoder_backend="openvino")


def test_quantize_without_the_onnx_backend_is_refused() -> None:
    with pytest.raises(RagloomError, match="quantize int8 needs encoder_backend onnx"):
        Encoder(EncoderSpec(backend="torch", quantize="int8"))


def test_cli_build_records_backend_and_rejects_an_unknown_one(wiki_corpus: Path, tmp_path: Path) -> None:
    r = _ragloom(
        "index", "build", "--corpus", str(wiki_corpus), "--out", str(tmp_path / "x"), "--encoder-backend", "tf"
    )
    assert r.returncode == 2 and "invalid choice: 'tf'" in r.stderr


def test_two_threads_hammering_one_encoder_get_the_results_of_one_thread(wiki_corpus: Path) -> None:
    # question-length texts, as the pipeline's source-selection and record threads send
    texts = [" ".join(json.loads(line)["text"].split()[:12]) for line in wiki_corpus.read_text().splitlines()[:48]]
    alone = Encoder().encode_queries(texts)
    shared = Encoder()
    errors: list[BaseException] = []
    results: dict[tuple[int, int], object] = {}

    def hammer(worker: int) -> None:
        try:
            for i in range(20):
                lo = (i * 7 + worker * 5) % 40
                results[(worker, i)] = (lo, shared.encode_queries(texts[lo : lo + 4]))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 40
    for lo, vecs in results.values():  # type: ignore[misc]
        assert abs(vecs - alone[lo : lo + 4]).max() < 1e-4


def test_a_corrupt_model_directory_is_a_one_line_error_naming_the_path(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(resolve_encoder("all-MiniLM-L6-v2")[1], model)
    weights = next(p for p in model.rglob("*") if p.suffix in (".safetensors", ".bin"))
    weights.write_bytes(b"\x00garbage" * 10)
    enc = Encoder(EncoderSpec(name=str(model)))
    caught: list[BaseException] = []
    # the generate command warms the encoder up on a thread: the error must come out of it as one line
    t = threading.Thread(target=lambda: _capture(caught, enc.encode_queries, ["warm-up"]))
    t.start()
    t.join()
    assert len(caught) == 1 and isinstance(caught[0], RagloomError), caught
    assert str(model) in str(caught[0]) and "\n" not in str(caught[0])


def _capture(into: list[BaseException], fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except BaseException as e:
        into.append(e)


def test_overwrite_refuses_a_non_empty_directory_that_is_not_an_index(wiki_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="holds no ragloom index"):
        build_index(CorpusSpec(str(wiki_corpus)), out, overwrite=True, limit=5)
    assert (out / "thesis.tex").read_text() == "years of work"
    r = _ragloom("index", "build", "--corpus", str(wiki_corpus), "--out", str(out), "--overwrite", "--limit", "5")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "holds no ragloom index" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_overwrite_replaces_an_existing_index(wiki_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    build_index(CorpusSpec(str(wiki_corpus)), out, limit=5)
    assert build_index(CorpusSpec(str(wiki_corpus)), out, overwrite=True, limit=7)["passages"] == 7


def test_a_hub_corpus_that_cannot_be_loaded_is_one_line_exit_2(tmp_path: Path) -> None:
    r = _ragloom(
        "index", "build", "--corpus", "no-such-user/no-such-corpus", "--format", "hf", "--out", str(tmp_path / "x")
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "no-such-user/no-such-corpus" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()
