"""`ragloom index build | info | search`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console

from ragloom.errors import ConfigError

from .build import INDEX_TYPES, IndexParams, build_index
from .corpus import FORMATS, CorpusSpec
from .encoder import DEFAULT_ENCODER, EncoderSpec
from .encoder_backends import BACKENDS, PRECISIONS, QUANTIZE
from .index import Index, read_manifest
from .progress import BuildProgress


def add_commands(sub: argparse._SubParsersAction) -> None:
    index = sub.add_parser("index", help="build, inspect and query a retrieval index")
    isub = index.add_subparsers(dest="index_command", required=True, metavar="{build,info,search}")

    b = isub.add_parser("build", help="corpus -> passage store + embeddings + faiss index")
    b.add_argument("--corpus", required=True, help="corpus file or directory (or a hub dataset name with --format hf)")
    b.add_argument("--format", choices=FORMATS, help="corpus format (default: from the file name)")
    b.add_argument("--encoder", default=DEFAULT_ENCODER, help="sentence-transformers model name or local path")
    b.add_argument("--out", required=True, help="index directory to create")
    b.add_argument("--index-type", choices=INDEX_TYPES, default="flat")
    b.add_argument("--limit", type=int, help="index only the first N passages")
    b.add_argument(
        "--embeddings", help="precomputed embeddings: a directory of pickled (ids, matrix) shards or a .npy file"
    )
    b.add_argument("--id-field", default="id")
    b.add_argument("--title-field", default="title")
    b.add_argument("--text-field", default="text")
    b.add_argument("--split", default="train", help="split of a `datasets` corpus")
    b.add_argument("--chunk-words", type=int, default=100, help="words per passage for text folders")
    b.add_argument("--chunk-overlap", type=int, default=0, help="words shared by consecutive text passages")
    b.add_argument("--max-passage-chars", type=int, default=100_000, help="longer passages are an error")
    b.add_argument("--query-prefix", default="", help="prepended to queries (e.g. 'query: ' for e5)")
    b.add_argument("--passage-prefix", default="", help="prepended to passages (e.g. 'passage: ' for e5)")
    b.add_argument("--no-normalize", action="store_true", help="keep raw embedding norms")
    b.add_argument("--batch-size", type=int, default=None, help="encode batch size (default: 32 on CPU, 128 on GPU)")
    b.add_argument("--device", help="cpu, cuda, mps (default: the best available)")
    b.add_argument(
        "--encoder-backend",
        choices=BACKENDS,
        default="torch",
        help="torch, or openvino/onnx (converted once from the model and cached; pip install 'ragloom[openvino]')",
    )
    b.add_argument("--quantize", choices=QUANTIZE, help="int8: dynamic int8 quantisation (onnx backend)")
    b.add_argument("--precision", choices=PRECISIONS, default="f32", help="openvino: f32, or bf16 where the CPU has it")
    b.add_argument("--nlist", type=int, help="ivf-pq: inverted lists (default ~4*sqrt(N))")
    b.add_argument("--pq-m", type=int, help="ivf-pq: sub-quantizers (must divide the dimension)")
    b.add_argument("--nprobe", type=int, default=64, help="ivf-pq: lists visited per query")
    b.add_argument("--hnsw-m", type=int, default=32, help="hnsw: links per node")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    b.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="embed in shards on Ray (default: local)")
    b.add_argument("--shards", type=int, help="--ray: row ranges to embed (default: >= 8, ~100k passages each)")
    b.set_defaults(func=_build)

    i = isub.add_parser("info", help="print an index's manifest")
    i.add_argument("dir")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)

    s = isub.add_parser("search", help="query an index")
    s.add_argument("dir")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--json", action="store_true", help='print [{"id","title","text","score","rank"}, ...]')
    s.set_defaults(func=_search)


def _build(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    corpus = CorpusSpec(
        args.corpus,
        args.format,
        args.id_field,
        args.title_field,
        args.text_field,
        args.split,
        args.chunk_words,
        args.chunk_overlap,
        args.max_passage_chars,
    )
    encoder = EncoderSpec(
        args.encoder,
        args.query_prefix,
        args.passage_prefix,
        not args.no_normalize,
        args.batch_size,
        args.device,
        args.encoder_backend,
        args.quantize,
        args.precision,
    )
    params = IndexParams(hnsw_m=args.hnsw_m, nlist=args.nlist, pq_m=args.pq_m, nprobe=args.nprobe)
    embed = None
    if args.ray is not None:
        from .ray_embed import RayEmbedder

        if args.embeddings:
            raise ConfigError("--ray embeds the corpus itself; drop --embeddings or --ray")
        embed = RayEmbedder(encoder, args.out, shards=args.shards, address=args.ray or None)
    t0 = time.perf_counter()
    with BuildProgress(console) as bar:
        m = build_index(
            corpus,
            args.out,
            encoder=encoder,
            index_type=args.index_type,
            params=params,
            limit=args.limit,
            embeddings=args.embeddings,
            overwrite=args.overwrite,
            progress=bar.update,
            embed=embed,
        )
    if embed is not None:
        embed.cleanup()
    secs = time.perf_counter() - t0
    skipped = m["corpus"]["skipped_empty"]
    console.print(
        f"built {args.out}: {m['passages']:,} passages, dim {m['encoder']['dim']}, {m['index']['type']} index, "
        f"{secs:.1f} s ({m['passages'] / max(secs, 1e-9):,.0f} passages/s)"
        + (f"; {skipped} empty records skipped" if skipped else ""),
        soft_wrap=True,
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    m = read_manifest(args.dir)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    c, e = m["corpus"], m["encoder"]
    print(f"index      {args.dir}")
    print(f"passages   {m['passages']:,}")
    numerics = e.get("backend", "torch") + (f", quantize {e['quantize']}" if e.get("quantize") else "")
    numerics += f", precision {e['precision']}" if e.get("precision", "f32") != "f32" else ""
    print(f"encoder    {e['name']} (dim {e['dim']}, normalize={e['normalize']}, backend {numerics})")
    if e.get("query_prefix") or e.get("passage_prefix"):
        print(f"prefixes   query={e['query_prefix']!r} passage={e['passage_prefix']!r}")
    print(f"type       {m['index']['type']} {json.dumps({k: v for k, v in m['index'].items() if k != 'type'})}")
    print(f"corpus     {c['path']} ({c['format']}, fingerprint {c['fingerprint']})")
    print(f"built      {m['created']} with ragloom {m['ragloom_version']} in {m['build_seconds']} s")
    return 0


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 1000:
        print(f"ragloom: -k {args.k} is out of range; use 1..1000", file=sys.stderr)
        return 2
    hits = Index(args.dir).search([args.query], k=args.k)[0]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": h.passage.id,
                        "title": h.passage.title,
                        "text": h.passage.text,
                        "score": h.score,
                        "rank": h.rank,
                    }
                    for h in hits
                ],
                ensure_ascii=False,
            )
        )
        return 0
    for h in hits:
        print(f"{h.rank:>4}  {h.score:.4f}  [{h.passage.id}] {h.passage.title}: {h.passage.text[:120]}")
    return 0
