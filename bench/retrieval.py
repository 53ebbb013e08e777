"""Retrieval benchmarks, each against the raw engine measured in the same run.

    python bench/retrieval.py [--passages 2000] [--queries 500] [--ivf-n 1000000] [--json out.json]

R1  index build passages/s: `build_index` vs raw SentenceTransformer.encode + IndexFlatIP.add
R2  batch search queries/s at k=250: `Index.search_embeddings` vs raw faiss search on the same
    index, and `Index.search` (embed + search + passages) vs raw encode + faiss
R3  ivf-pq on N synthetic 768-d vectors: build time, resident memory, queries/s, recall@250
    against exact search on a sample; memory extrapolated to 21M passages
R4  encoder backends in one run: torch, openvino f32, openvino bf16, onnx fp32, onnx int8:
    one-off conversion seconds, index build passages/s and its ratio to torch, and retrieval parity
    against torch: top-10 overlap and known-article recall@5 over the corpus articles' own
    Wikidata descriptions (human-written, >= 4 words) plus the tests' hand-written queries
R5  threads: openvino / onnx encode with a concurrent faiss search thread, with the runtimes'
    default threads and with ragloom's settings
R6  `ragloom index build` of the quickstart's corpus (examples/prepare_wiki.py --order quickstart)
    through the CLI, each backend in its own process as a user runs it (start-up, model load and
    conversion cache read included; --rounds alternate the backends): seconds and the ratio to
    torch's median, with top-10 overlap and known-answer recall@5 of each index against torch's
R7  the compute bound of R6: the quickstart corpus's tokens (the model's tokenizer, cut at its
    max_seq_length), the encoder's floating-point work from the model's own config, the raw GEMM
    peak of this CPU in f32 and bf16 (torch.mm, square, 1024-4096, all cores), and the GFLOP/s each path
    reaches encoding that corpus in process: what any f32 path could gain over torch at most
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from memory import MemorySampler, rss_mb  # noqa: E402


def bench_build(tmp: Path, n: int) -> dict:
    import faiss
    from conftest import write_wiki_jsonl
    from ragloom.retrieval import CorpusSpec, Encoder, build_index
    from ragloom.retrieval.encoder import passage_text, resolve_encoder
    from sentence_transformers import SentenceTransformer

    rows = write_wiki_jsonl(tmp / "wiki.jsonl", n)
    texts = [passage_text(r["title"], r["text"]) for r in rows]
    model = SentenceTransformer(resolve_encoder("all-MiniLM-L6-v2")[1], device="cpu")
    model.encode(texts[:64])  # warm up both paths alike
    Encoder().encode_passages(texts[:64])
    t = time.perf_counter()
    vecs = model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
    raw_index = faiss.IndexFlatIP(vecs.shape[1])
    raw_index.add(vecs)
    raw = time.perf_counter() - t
    t = time.perf_counter()
    build_index(CorpusSpec(str(tmp / "wiki.jsonl")), tmp / "idx")
    ours = time.perf_counter() - t
    return {
        "passages": len(texts),
        "raw_passages_per_s": len(texts) / raw,
        "ragloom_passages_per_s": len(texts) / ours,
        "ratio": raw / ours,
    }


def bench_search(tmp: Path, nq: int, k: int = 250) -> dict:
    import faiss
    from ragloom.retrieval import Index

    index = Index(tmp / "idx")
    titles, _ = index.store.slice_texts(0, len(index.store))
    queries = [f"What is known about {t}?" for t in (titles * (nq // len(titles) + 1))[:nq]]
    vecs = index.embed_queries(queries)
    raw_index = faiss.read_index(str(tmp / "idx" / "index.faiss"))
    out: dict = {"queries": nq, "k": k}
    for _ in range(2):  # second pass is the measured one
        t = time.perf_counter()
        raw_index.search(vecs, k)
        raw = time.perf_counter() - t
        t = time.perf_counter()
        index.search_embeddings(vecs, k)
        ours = time.perf_counter() - t
    out.update(raw_qps=nq / raw, ragloom_qps=nq / ours, ratio=raw / ours)
    t = time.perf_counter()
    raw_index.search(index.encoder.model.encode(queries, batch_size=128, normalize_embeddings=True), k)
    raw_full = time.perf_counter() - t
    t = time.perf_counter()
    index.search(queries, k)
    ours_full = time.perf_counter() - t
    out.update(raw_text_qps=nq / raw_full, ragloom_text_qps=nq / ours_full, text_ratio=raw_full / ours_full)
    return out


def bench_ivfpq(tmp: Path, n: int, dim: int = 768, sample: int = 200, k: int = 250) -> dict:
    import faiss
    from ragloom.retrieval import CorpusSpec, Index, IndexParams, build_index

    rng = np.random.default_rng(0)
    # Clustered vectors, so recall is meaningful (uniform noise has no neighbourhoods).
    centers = rng.standard_normal((1000, dim), dtype=np.float32)
    emb = np.lib.format.open_memmap(tmp / "emb.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        block = centers[rng.integers(0, 1000, m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        emb[s : s + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    emb.flush()
    with open(tmp / "syn.jsonl", "w") as fh, open(tmp / "emb.ids.txt", "w") as ids:
        for i in range(n):
            fh.write(f'{{"id": "s{i}", "title": "", "text": "synthetic passage {i}"}}\n')
            ids.write(f"s{i}\n")
    del emb
    rss0 = rss_mb("RssAnon")
    t = time.perf_counter()
    with MemorySampler("RssAnon", every=0.05) as peak:
        m = build_index(
            CorpusSpec(str(tmp / "syn.jsonl")),
            tmp / "ivf",
            index_type="ivf-pq",
            embeddings=str(tmp / "emb.npy"),
            params=IndexParams(nprobe=64),
        )
    build_s = time.perf_counter() - t
    # ru_maxrss also counts the memory-mapped pages of the embedding file (page cache, reclaimable)
    peak_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    index = Index(tmp / "ivf")
    rss_loaded = rss_mb("RssAnon")
    emb = np.load(tmp / "emb.npy", mmap_mode="r")
    qrows = rng.choice(n, sample, replace=False)
    q = np.ascontiguousarray(emb[qrows] + 0.05 * rng.standard_normal((sample, dim), dtype=np.float32))
    t = time.perf_counter()
    _, approx = index.search_embeddings(q, k)
    qps = sample / (time.perf_counter() - t)
    exact = faiss.IndexFlatIP(dim)
    best = [np.empty((sample, 0))]
    scores = np.full((sample, k), -np.inf, dtype=np.float32)
    rows = np.zeros((sample, k), dtype=np.int64)
    for s in range(0, n, 200_000):
        exact.reset()
        exact.add(np.ascontiguousarray(emb[s : s + 200_000]))
        d, i = exact.search(q, k)
        cat_s, cat_r = np.hstack([scores, d]), np.hstack([rows, i + s])
        top = np.argsort(-cat_s, axis=1)[:, :k]
        scores, rows = np.take_along_axis(cat_s, top, 1), np.take_along_axis(cat_r, top, 1)
    del best
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(approx, rows)]))
    index_bytes = (tmp / "ivf" / "index.faiss").stat().st_size
    return {
        "n": n,
        "dim": dim,
        "params": m["index"],
        "build_s": build_s,
        "peak_rss_incl_mapped_mb": peak_build,
        "peak_anon_rss_build_mb": peak.peak,
        "anon_rss_before_mb": rss0,
        "anon_rss_after_open_mb": rss_loaded,
        "train_matrix_mb": m["index"]["train_size"] * dim * 4 / 2**20,
        "index_file_mb": index_bytes / 2**20,
        "qps_k250": qps,
        "recall_at_250": recall,
        "extrapolated_index_gb_21m": index_bytes / n * 21_000_000 / 2**30,
    }


PATHS = {  # name -> (encoder_backend, quantize, precision)
    "torch": ("torch", None, "f32"),
    "openvino": ("openvino", None, "f32"),
    "openvino-bf16": ("openvino", None, "bf16"),
    "onnx": ("onnx", None, "f32"),
    "onnx-int8": ("onnx", "int8", "f32"),
}


def parity_queries(rows: list[dict]) -> dict[str, str]:
    """Query -> the passage id it should find: the tests' hand-written known-answer queries whose article
    is in `rows`, then each article's own Wikidata description of 4+ words (human-written)."""
    import importlib.util

    from conftest import wiki_summaries

    spec = importlib.util.spec_from_file_location("test_index", ROOT / "tests/retrieval/test_index.py")
    assert spec and spec.loader
    test_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_index)
    ids = {r["id"] for r in rows}
    queries = {q: a for q, a in test_index.KNOWN_QUERIES.items() if a in ids}
    described = {v["title"]: v.get("description") or "" for v in wiki_summaries().values()}
    for r in rows:
        desc = described.get(r["title"], "")
        if len(desc.split()) >= 4:
            queries.setdefault(desc, r["id"])
    return queries


def bench_backends(tmp: Path, n: int, names: tuple[str, ...] = tuple(PATHS)) -> dict:

    from conftest import write_wiki_jsonl
    from ragloom.retrieval import CorpusSpec, EncoderSpec, Index, build_index
    from ragloom.retrieval import encoder_backends as eb
    from ragloom.retrieval.encoder import resolve_encoder

    os.environ.setdefault("RAGLOOM_CACHE_DIR", str(tmp / "cache"))
    # measure int8 even where ragloom refuses it: this figure is what the refusal rests on
    eb.INT8_OVERLAP = dict.fromkeys(eb.INT8_OVERLAP, 1.0)
    rows = write_wiki_jsonl(tmp / "r4.jsonl", n)
    queries = parity_queries(rows)
    qs, want = list(queries), list(queries.values())
    out: dict = {"passages": len(rows), "queries": len(qs), "cpu_bf16": eb.cpu_has_bf16()}
    top10: dict[str, list[list[str]]] = {}
    model_dir = Path(resolve_encoder("all-MiniLM-L6-v2")[1])
    for name in names:
        backend, quant, precision = PATHS[name]
        eb.require_backend(backend)
        t = time.perf_counter()
        if backend != "torch":
            eb.exported_model_dir(model_dir, backend, precision, quant)
        export_s = time.perf_counter() - t
        t = time.perf_counter()
        enc = EncoderSpec(backend=backend, quantize=quant, precision=precision, device="cpu")
        build_index(CorpusSpec(str(tmp / "r4.jsonl")), tmp / f"r4-{name}", encoder=enc)
        build_s = time.perf_counter() - t
        hits = Index(tmp / f"r4-{name}").search(qs, k=10)
        top10[name] = [[h.passage.id for h in q] for q in hits]
        recall5 = sum(w in ids[:5] for w, ids in zip(want, top10[name])) / len(qs)
        res = {"export_s": export_s, "build_passages_per_s": len(rows) / build_s, "recall_at_5": recall5}
        if name != "torch" and "torch" in out:
            ref = top10["torch"]
            overlaps = [len(set(a) & set(b)) / 10 for a, b in zip(top10[name], ref)]
            res["top10_overlap_vs_torch"] = float(np.mean(overlaps))
            res["top10_overlap_min"] = float(np.min(overlaps))
            res["speedup_vs_torch"] = res["build_passages_per_s"] / out["torch"]["build_passages_per_s"]
            res["faithful"] = res["top10_overlap_vs_torch"] >= 0.99 and recall5 >= out["torch"]["recall_at_5"]
        out[name] = res
        print("R4", name, json.dumps(res), flush=True)
    return out


def bench_threads(tmp: Path, n: int) -> dict:
    """R5: encoder runtime and faiss threads. Encode n passages with openvino f32 and onnx while a
    second thread runs faiss searches (as the pipeline's distractor search does), with the runtimes'
    own thread defaults (OpenVINO's precision pinned to f32 in both) and with ragloom's settings
    (encoder threads = the process's cores, faiss OpenMP threads = 1 or the cores); passages/s of
    the encoder and faiss searches/s."""
    import threading

    import faiss
    from conftest import write_wiki_jsonl
    from ragloom.retrieval import encoder_backends as eb
    from ragloom.retrieval.encoder import passage_text, resolve_encoder
    from ragloom.retrieval.encoder_export import read_layout
    from ragloom.retrieval.encoder_runtime import ConvertedEncoder, FastTokenizer, onnx_runner, openvino_runner

    os.environ.setdefault("RAGLOOM_CACHE_DIR", str(tmp / "cache"))
    rows = write_wiki_jsonl(tmp / "r5.jsonl", n)
    texts = [passage_text(r["title"], r["text"]) for r in rows]
    model_dir = Path(resolve_encoder("all-MiniLM-L6-v2")[1])
    layout = read_layout(model_dir)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50_000, 384), dtype=np.float32)
    search_index = faiss.IndexFlatIP(384)
    search_index.add(base)
    queries = rng.standard_normal((16, 384), dtype=np.float32)
    cores = eb.default_threads()

    def runtime_default(backend: str) -> tuple:
        path = eb.exported_model_dir(model_dir, backend, "f32", None)
        if backend == "openvino":
            from ragloom.retrieval.quiet import import_openvino

            ov = import_openvino()

            # only the precision is pinned (f32), else OpenVINO picks bf16 by itself where the CPU has it
            compiled = ov.Core().compile_model(str(path / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            return lambda batches: [compiled(f)[0] for f in batches], [p.get_any_name() for p in compiled.inputs]
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
        return lambda batches: [sess.run(None, f)[0] for f in batches], [i.name for i in sess.get_inputs()]

    def ragloom_set(backend: str) -> tuple:
        path = eb.exported_model_dir(model_dir, backend, "f32", None)
        if backend == "openvino":
            return openvino_runner(path / "model.xml", "f32", cores)
        return onnx_runner(path / "model.onnx", cores)

    out: dict = {"passages": n, "cores": cores, "load_avg_1m_start": os.getloadavg()[0]}
    for backend in ("openvino", "onnx"):
        for label, make, faiss_threads in (
            ("runtime defaults, faiss default", runtime_default, faiss.omp_get_max_threads()),
            ("ragloom threads, faiss = cores", ragloom_set, cores),
            ("ragloom threads, faiss 1", ragloom_set, 1),
        ):
            faiss.omp_set_num_threads(faiss_threads)
            run, names = make(backend)
            enc = ConvertedEncoder(FastTokenizer(layout, names), run, 384)
            enc.encode(texts[:32])
            stop, searches = threading.Event(), [0]

            def search_loop(stop: threading.Event = stop, searches: list[int] = searches) -> None:
                while not stop.is_set():
                    search_index.search(queries, 250)
                    searches[0] += 1

            worker = threading.Thread(target=search_loop)
            t = time.perf_counter()
            worker.start()
            enc.encode(texts, batch_size=32)
            wall = time.perf_counter() - t
            stop.set()
            worker.join()
            res = {"encode_passages_per_s": n / wall, "faiss_searches_per_s": searches[0] / wall}
            out[f"{backend}: {label}"] = res
            print("R5", backend, label, json.dumps(res), flush=True)
    return out


def quickstart_corpus(tmp: Path, n: int) -> Path:
    import subprocess

    corpus = tmp / "quickstart.jsonl"
    if corpus.exists():
        return corpus
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/prepare_wiki.py"),
            str(corpus),
            "--order",
            "quickstart",
            "--limit",
            str(n),
        ],
        check=True,
        capture_output=True,
    )
    return corpus


def bench_cli_build(tmp: Path, n: int, names: tuple[str, ...], rounds: int) -> dict:
    import statistics
    import subprocess

    from ragloom.retrieval import Index

    corpus = quickstart_corpus(tmp, n)
    os.environ.setdefault("RAGLOOM_CACHE_DIR", str(tmp / "cache"))
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds + 1):  # round 0 converts each model once (a user's first build); not timed
        for name in names:
            backend, quant, precision = PATHS[name]
            args = ["--encoder-backend", backend, "--precision", precision] + (["--quantize", quant] if quant else [])
            out = tmp / f"r6-{name}"
            t = time.perf_counter()
            cmd = [sys.executable, "-m", "ragloom", "index", "build", "--corpus", str(corpus), "--out", str(out)]
            subprocess.run([*cmd, "--overwrite", *args], check=True, capture_output=True)
            if r:
                seconds[name].append(time.perf_counter() - t)
    res: dict = {"passages": n, "rounds": rounds}
    want = parity_queries([json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()])
    qs = list(want)
    res["queries"] = len(qs)
    top10 = {}
    for name in names:
        hits = Index(tmp / f"r6-{name}").search(qs, k=10)
        top10[name] = [[h.passage.id for h in q] for q in hits]
        med = statistics.median(seconds[name])
        res[name] = {"seconds": [round(x, 1) for x in seconds[name]], "median_s": round(med, 1)}
        found = [want[q] in top[:5] for q, top in zip(qs, top10[name])]
        res[name]["known_recall_at_5"] = round(sum(found) / len(qs), 3)
        if name != "torch" and "torch" in res:
            res[name]["speedup_vs_torch"] = round(res["torch"]["median_s"] / med, 2)
            overlaps = [len(set(a) & set(b)) / 10 for a, b in zip(top10[name], top10["torch"])]
            res[name]["top10_overlap_vs_torch"] = round(float(np.mean(overlaps)), 3)
        print("R6", name, json.dumps(res[name]), flush=True)
    return res


def gemm_peak_gflops(dtype: str, sizes: tuple[int, ...] = (1024, 2048, 3072, 4096), repeats: int = 4) -> float:
    """The raw engine's ceiling: the fastest of `repeats` square matmuls in torch on all cores, over
    several sizes (the best size differs by CPU and type)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    kind = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
    peak = 0.0
    for size in sizes:
        a = torch.randn(size, size).to(kind)
        b = torch.randn(size, size).to(kind)
        torch.mm(a, b)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
        peak = max(peak, 2 * size**3 / best / 1e9)
    return peak


def bench_compute_bound(tmp: Path, n: int, names: tuple[str, ...]) -> dict:
    """R7: the floating-point work of encoding the quickstart corpus, against this CPU's GEMM peak."""
    from ragloom.retrieval.encoder import Encoder, EncoderSpec, passage_text, resolve_encoder
    from ragloom.retrieval.encoder_export import read_layout
    from ragloom.retrieval.encoder_runtime import FastTokenizer

    os.environ.setdefault("RAGLOOM_CACHE_DIR", str(tmp / "cache"))
    rows = [json.loads(line) for line in quickstart_corpus(tmp, n).read_text(encoding="utf-8").splitlines()]
    texts = [passage_text(r["title"], r["text"]) for r in rows]
    # the converted encoder's own tokenizer (the model's length, case and special tokens): its tokens
    # are what each path runs, padding aside
    layout = read_layout(resolve_encoder("all-MiniLM-L6-v2")[1])
    cfg = json.loads((layout.transformer_dir / "config.json").read_text())
    max_len = layout.max_seq_length
    lengths = FastTokenizer(layout, ["attention_mask"])(texts)["attention_mask"].sum(axis=1)
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    # per layer: q, k, v, o projections (4 h^2 per token), the feed-forward (2 h i per token), and
    # attention's scores and weighted sum (2 L^2 h); 2 flops per multiply-add
    macs = layers * (lengths * (4 * h * h + 2 * h * inter) + 2 * lengths.astype(np.int64) ** 2 * h)
    gflop = float(2 * macs.sum() / 1e9)
    res: dict = {
        "passages": len(texts),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_at_max": int((lengths >= max_len).sum()),
        "gflop": round(gflop, 1),
        "gemm_peak_gflops": {d: round(gemm_peak_gflops(d), 1) for d in ("f32", "bf16")},
    }
    for name in names:
        backend, quant, precision = PATHS[name]
        enc = Encoder(EncoderSpec(backend=backend, quantize=quant, precision=precision, device="cpu"), cache_size=0)
        enc.encode_passages(texts[:64])  # load and warm up
        t = time.perf_counter()
        enc.encode_passages(texts)
        s = time.perf_counter() - t
        peak = res["gemm_peak_gflops"]["bf16" if precision == "bf16" else "f32"]
        res[name] = {
            "passages_per_s": round(len(texts) / s, 1),
            "gflops": round(gflop / s, 1),
            "share_of_peak": round(gflop / s / peak, 2),
        }
        print("R7", name, json.dumps(res[name]), flush=True)
    if "torch" in res:
        # no f32 path can run faster than the f32 GEMM peak: its best possible ratio to torch, and the
        # share of that peak a path must hold over the whole encoder to be 2x torch
        res["f32_bound_vs_torch"] = round(res["gemm_peak_gflops"]["f32"] / res["torch"]["gflops"], 2)
        res["share_of_peak_for_2x"] = round(2 * res["torch"]["gflops"] / res["gemm_peak_gflops"]["f32"], 2)
    print("R7", json.dumps({k: v for k, v in res.items() if k not in names}), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--ivf-n", type=int, default=1_000_000, help="0 skips R3")
    ap.add_argument(
        "--only", choices=["r1", "r2", "r3", "r4", "r5", "r6", "r7"], action="append", help="run only these parts"
    )
    ap.add_argument("--rounds", type=int, default=2, help="R6: timed builds per backend")
    ap.add_argument("--backends", default=",".join(PATHS), help="R4: which encoder backends")
    ap.add_argument("--json", default="bench/results/retrieval.json")
    args = ap.parse_args()
    report: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        only = set(args.only or ["r1", "r2", "r3", "r4", "r5", "r6", "r7"])
        if only & {"r1", "r2"}:
            report["R1_build"] = bench_build(tmp, args.passages)
            print("R1 build", json.dumps(report["R1_build"]), flush=True)
        if "r2" in only:
            report["R2_search"] = bench_search(tmp, args.queries)
            print("R2 search", json.dumps(report["R2_search"]), flush=True)
        if args.ivf_n and "r3" in only:
            report["R3_ivfpq"] = bench_ivfpq(tmp, args.ivf_n)
            print("R3 ivf-pq", json.dumps(report["R3_ivfpq"]), flush=True)
        if "r4" in only:
            report["R4_backends"] = bench_backends(tmp, args.passages, tuple(args.backends.split(",")))
        if "r5" in only:
            report["R5_threads"] = bench_threads(tmp, min(args.passages, 200))
        if "r6" in only:
            names = tuple(b for b in args.backends.split(",") if b in ("torch", "openvino", "openvino-bf16"))
            report["R6_cli_build"] = bench_cli_build(tmp, args.passages, names, args.rounds)
        if "r7" in only:
            names = tuple(b for b in args.backends.split(",") if b in ("torch", "openvino", "openvino-bf16"))
            report["R7_compute_bound"] = bench_compute_bound(tmp, args.passages, names)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"report: {args.json}")


if __name__ == "__main__":
    main()
