"""Encoder: backends and their export cache, numerics in the manifest, thread safety, load errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from ragloom.retrieval import CorpusSpec, Encoder, EncoderSpec, Index, build_index, encoder_backends
from ragloom.retrieval.encoder import resolve_encoder
from ragloom.retrieval.encoder_backends import CONVERSIONS
from test_index import KNOWN_QUERIES

from ragloom.errors import ConfigError, IndexMismatchError, MissingDependencyError, OutputError, RagloomError

# (encoder_backend, quantize, precision) of the faithful fast paths; int8 is tested on its own below
FAST = [("openvino", None, "f32"), ("openvino", None, "bf16"), ("onnx", None, "f32")]
# top-10 overlap with torch each path must keep over the test corpus's queries (bench/retrieval.py R4
# measures the same on 1,000 summaries: 1.000 for the f32 paths)
MIN_OVERLAP = {"f32": 0.99, "bf16": 0.95}


def _ragloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragloom", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(autouse=True)
def _cache_in_tmp(export_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLOOM_CACHE_DIR", str(export_cache))


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As on a user's machine: not a CI job (where OpenVINO's telemetry declines by itself), and a HOME
    with no consent file in ~/intel."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("HOME", str(home))
    return home


def _queries(wiki_corpus: Path, n: int = 60) -> list[str]:
    """The known-answer queries, and the first sentence of some summaries cut to question length."""
    rows = [json.loads(line) for line in wiki_corpus.read_text().splitlines()[:: max(1, 400 // n)]]
    return list(KNOWN_QUERIES) + [" ".join(r["text"].split(".")[0].split()[:14]) for r in rows]


def _top10(index: Index, queries: list[str]) -> list[list[str]]:
    return [[h.passage.id for h in hits] for hits in index.search(queries, k=10)]


@pytest.fixture(scope="module")
def torch_top10(wiki_index: Path, wiki_corpus: Path) -> list[list[str]]:
    return _top10(Index(wiki_index), _queries(wiki_corpus))


@pytest.mark.parametrize("backend,quantize,precision", FAST, ids=["openvino", "openvino-bf16", "onnx"])
def test_each_fast_backend_builds_an_index_that_answers_like_torch(
    backend: str,
    quantize: str | None,
    precision: str,
    wiki_corpus: Path,
    torch_top10: list[list[str]],
    tmp_path: Path,
) -> None:
    spec = EncoderSpec(backend=backend, quantize=quantize, precision=precision)
    if precision == "bf16" and not encoder_backends.cpu_has_bf16():
        # a CPU without bf16 (no avx512_bf16 or AMX: the AMD EPYC CI ran on, 2026-12-05) encodes in f32, with a one-line
        # note (tested below), and the index records the precision it was built with
        precision = "f32"
    m = build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "idx", encoder=spec)
    assert (m["encoder"]["backend"], m["encoder"]["quantize"], m["encoder"]["precision"]) == (
        backend,
        quantize,
        precision,
    )
    index = Index(tmp_path / "idx")
    assert (index.encoder.spec.backend, index.encoder.spec.precision) == (backend, precision)
    top10 = _top10(index, _queries(wiki_corpus))
    for (query, article), ids in zip(KNOWN_QUERIES.items(), top10):
        assert article in ids[:5], f"{backend} {precision}: {query!r} -> {ids[:5]}"
    overlap = sum(len(set(a) & set(b)) for a, b in zip(top10, torch_top10)) / (10 * len(top10))
    assert overlap >= MIN_OVERLAP[precision], f"{backend} {precision}: top-10 overlap with torch {overlap:.3f}"


def test_token_ids_equal_sentence_transformers_on_long_unicode_and_empty_texts() -> None:
    from sentence_transformers import SentenceTransformer

    load_path = resolve_encoder("all-MiniLM-L6-v2")[1]
    texts = [
        "",
        "   ",
        "The Eiffel Tower is a wrought-iron lattice tower. " * 60,  # ~600 words: over max_seq_length (256)
        "Ünïcödé naïve café — 東京タワー, Αθήνα, Москва 😀 ﬁ ligature, combining e\u0301",
        "short",
        "tab\tand\nnewline  spaced  text",
    ]
    reference = SentenceTransformer(load_path, device="cpu").preprocess(texts)
    assert reference["input_ids"].shape[1] == 256  # the over-length text is cut at max_seq_length, not 128
    ours = Encoder(EncoderSpec(backend="openvino")).model.preprocess(texts)
    assert set(ours) == {"input_ids", "attention_mask", "token_type_ids"}
    for name, ids in ours.items():
        assert ids.tolist() == reference[name].tolist(), name
    # padding goes to the longest text of the batch, not to a fixed length
    short = Encoder(EncoderSpec(backend="openvino")).model.preprocess(["short", "two words"])
    assert short["input_ids"].shape == (2, 4)


def test_the_second_build_uses_the_cached_conversion_and_the_conversion_sends_nothing(
    wiki_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_home: Path
) -> None:
    from openvino_telemetry.utils.sender import TelemetrySender

    monkeypatch.setenv("RAGLOOM_CACHE_DIR", str(tmp_path / "cache"))
    sent: list[object] = []
    monkeypatch.setattr(TelemetrySender, "send", lambda self, backend, message: sent.append(message))
    spec = EncoderSpec(backend="openvino")
    before = CONVERSIONS["count"]
    build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "a", encoder=spec, limit=20)
    assert CONVERSIONS["count"] == before + 1
    # openvino.convert_model reports to Intel's analytics and writes a client id to ~/intel by default
    assert sent == [] and not (user_home / "intel").exists()
    (made,) = (tmp_path / "cache" / "encoders").iterdir()
    assert (made / "model.xml").is_file() and (made / "model.bin").stat().st_size > 80e6  # f32 weights, no fp16
    build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "b", encoder=spec, limit=20)
    Index(tmp_path / "b").search(["Who painted the Mona Lisa portrait?"], k=3)
    assert CONVERSIONS["count"] == before + 1
    assert [p.name for p in (tmp_path / "cache" / "encoders").iterdir()] == [made.name]


def test_openvino_keeps_its_compiled_model_and_a_torn_one_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled model is kept beside the conversion and read by later loads; a torn one (a
    crash while it was written) is compiled again, with the same vectors."""
    monkeypatch.setenv("RAGLOOM_CACHE_DIR", str(tmp_path / "cache"))
    path = resolve_encoder("all-MiniLM-L6-v2")[1]
    texts = ["Who painted the Mona Lisa portrait?", "Penicillin was discovered by Alexander Fleming in 1928."]
    first = encoder_backends.load_model(path, "openvino", None, "cpu", True, "f32", 2).encode(texts)
    (made,) = (tmp_path / "cache" / "encoders").iterdir()
    (blob,) = (made / "compiled").glob("*.blob")
    assert blob.stat().st_size > 10e6
    stamp = blob.stat().st_mtime_ns
    again = encoder_backends.load_model(path, "openvino", None, "cpu", True, "f32", 2).encode(texts)
    assert blob.stat().st_mtime_ns == stamp  # read, not written again
    np.testing.assert_array_equal(again, first)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:1000])
    torn = encoder_backends.load_model(path, "openvino", None, "cpu", True, "f32", 2).encode(texts)
    np.testing.assert_array_equal(torn, first)


def test_the_converted_model_uses_the_models_own_pooling_and_normalisation(tmp_path: Path) -> None:
    """A copy of the model with CLS pooling and no Normalize module: the conversion follows its
    config, and gives what sentence-transformers gives for that same directory."""
    from sentence_transformers import SentenceTransformer

    model = tmp_path / "cls-model"
    shutil.copytree(resolve_encoder("all-MiniLM-L6-v2")[1], model)
    pooling = model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    modules = json.loads((model / "modules.json").read_text())
    (model / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    texts = ["Who painted the Mona Lisa portrait?", "Penicillin was discovered by Alexander Fleming in 1928."]
    want = SentenceTransformer(str(model), device="cpu").encode(texts, convert_to_numpy=True)
    got = Encoder(EncoderSpec(name=str(model), backend="openvino", normalize=False)).encode_passages(texts)
    assert abs(np.linalg.norm(want, axis=1) - 1).min() > 0.1  # not normalised: the test can tell
    assert np.allclose(got, want, atol=1e-4)


def test_a_model_with_modules_the_conversion_does_not_know_is_one_line(tmp_path: Path) -> None:
    model = tmp_path / "dense-model"
    shutil.copytree(resolve_encoder("all-MiniLM-L6-v2")[1], model)
    modules = json.loads((model / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(
        ConfigError, match=r"modules Transformer, Pooling, Dense, Normalize .*encoder_backend torch"
    ) as e:
        Encoder(EncoderSpec(name=str(model), backend="onnx")).encode_queries(["x"])
    assert "\n" not in str(e.value)


def test_int8_is_accepted_exactly_where_it_keeps_parity(
    wiki_corpus: Path, torch_top10: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build the test corpus's index with onnx int8 (past the guard), measure it against torch, and
    check that ragloom's guard accepts int8 exactly when the measured overlap is >= 0.9."""
    monkeypatch.setitem(encoder_backends.INT8_OVERLAP, "onnx", 1.0)  # let the measurement through
    build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "int8", encoder=EncoderSpec(backend="onnx", quantize="int8"))
    top10 = _top10(Index(tmp_path / "int8"), _queries(wiki_corpus))
    overlap = sum(len(set(a) & set(b)) for a, b in zip(top10, torch_top10)) / (10 * len(top10))
    known = sum(article in ids[:5] for article, ids in zip(KNOWN_QUERIES.values(), top10))
    monkeypatch.undo()
    keeps_parity = overlap >= 0.9 and known == len(KNOWN_QUERIES)
    if keeps_parity:
        Encoder(EncoderSpec(backend="onnx", quantize="int8"))
    else:
        with pytest.raises(ConfigError, match=r"quantize int8 is refused for encoder_backend onnx: .*top-10 overlap"):
            Encoder(EncoderSpec(backend="onnx", quantize="int8"))
        r = _ragloom(
            "index",
            "build",
            "--corpus",
            str(wiki_corpus),
            "--out",
            str(tmp_path / "x"),
            "--encoder-backend",
            "onnx",
            "--quantize",
            "int8",
        )
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "refused" in r.stderr, r.stderr


@pytest.mark.parametrize("backend,module", [("openvino", "openvino"), ("onnx", "onnxruntime")])
def test_a_backend_whose_package_is_missing_is_one_line_with_the_install_command(
    backend: str, module: str, monkeypatch: pytest.MonkeyPatch, wiki_corpus: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    with pytest.raises(
        MissingDependencyError, match=rf"encoder_backend {backend} needs {module} .*pip install 'ragloom\[{backend}\]'"
    ) as e:
        build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "idx", encoder=EncoderSpec(backend=backend), limit=5)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "idx").exists()


def test_bf16_on_a_cpu_without_it_is_a_note_and_f32(
    wiki_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(encoder_backends, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(encoder_backends, "_NOTED", [])
    m = build_index(
        CorpusSpec(str(wiki_corpus)),
        tmp_path / "idx",
        encoder=EncoderSpec(backend="openvino", precision="bf16"),
        limit=5,
    )
    assert m["encoder"]["precision"] == "f32"
    notes = [line for line in capsys.readouterr().err.splitlines() if "bf16" in line]
    assert notes == ["note: precision bf16: this CPU has no bf16 (avx512_bf16/AMX); encoding in f32"]


def test_the_manifest_records_the_torch_backend_and_no_quantisation(wiki_index: Path) -> None:
    enc = json.loads((wiki_index / "manifest.json").read_text())["encoder"]
    assert (enc["backend"], enc["quantize"], enc["precision"]) == ("torch", None, "f32")


def test_a_torch_index_may_be_queried_through_the_f32_backends_but_not_bf16(wiki_index: Path) -> None:
    for backend in ("onnx", "openvino"):
        spec = Index(wiki_index, encoder_backend=backend).encoder_spec
        assert (spec.backend, spec.quantize, spec.precision) == (backend, None, "f32")
    with pytest.raises(
        IndexMismatchError, match="built with encoder_backend torch; querying it with openvino bf16"
    ) as e:
        Index(wiki_index, encoder_backend="openvino", precision="bf16")
    assert "\n" not in str(e.value)


def test_quantize_or_precision_on_a_backend_that_cannot_is_refused() -> None:
    with pytest.raises(RagloomError, match="quantize int8 needs encoder_backend onnx"):
        Encoder(EncoderSpec(backend="torch", quantize="int8"))
    with pytest.raises(RagloomError, match="quantize int8 needs encoder_backend onnx"):
        Encoder(EncoderSpec(backend="openvino", quantize="int8"))
    with pytest.raises(RagloomError, match="precision bf16 needs encoder_backend openvino"):
        Encoder(EncoderSpec(backend="onnx", precision="bf16"))


def test_cli_build_records_backend_and_rejects_an_unknown_one(wiki_corpus: Path, tmp_path: Path) -> None:
    r = _ragloom(
        "index", "build", "--corpus", str(wiki_corpus), "--out", str(tmp_path / "x"), "--encoder-backend", "tf"
    )
    assert r.returncode == 2 and "invalid choice: 'tf'" in r.stderr


def test_two_threads_hammering_one_encoder_get_the_results_of_one_thread(wiki_corpus: Path) -> None:
    # question-length texts, as the pipeline's source-selection and record threads send
    texts = [" ".join(json.loads(line)["text"].split()[:12]) for line in wiki_corpus.read_text().splitlines()[:48]]
    alone = Encoder().encode_queries(texts)
    shared = Encoder(cache_size=0)  # every call reaches the model (no vectors kept between calls)
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


def test_int8_on_a_backend_measured_under_the_bar_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(encoder_backends.INT8_OVERLAP, "onnx", 0.82)  # the figure for the defaults
    with pytest.raises(
        ConfigError, match=r"refused for encoder_backend onnx: .* top-10 overlap with torch is 0\.820"
    ) as e:
        Encoder(EncoderSpec(backend="onnx", quantize="int8"))
    assert "\n" not in str(e.value)


def test_a_converted_encoder_loads_without_importing_torch_or_sentence_transformers_and_sends_nothing(
    user_home: Path,
) -> None:
    """Once converted, an openvino encoder needs only openvino and tokenizers: importing torch and
    sentence-transformers cost 5 of the 5.3 s such a load took, in every run."""
    Encoder(EncoderSpec(backend="openvino")).encode_queries(["convert it first"])  # into the test's cache
    code = (
        "import sys; from ragloom.retrieval import Encoder, EncoderSpec; "
        "v = Encoder(EncoderSpec(backend='openvino')).encode_queries(['Where does the Nile rise?']); "
        "print(v.shape, sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    # what openvino's telemetry would send is kept here instead (importing openvino sends an event)
    spy = "from openvino_telemetry.utils.sender import TelemetrySender as S; S.send = lambda *a: print('SENT'); "
    out = subprocess.run([sys.executable, "-c", spy + code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 384) []"
    assert not (user_home / "intel").exists()  # no client id written either
