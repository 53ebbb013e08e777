"""The `vllm` backend with the real vLLM 0.33.0 parameter and output classes, and only the engine stood in.

vLLM needs a GPU, so `vllm.LLM` is replaced by a stand-in whose `__init__`, `chat`, `generate`
and `get_tokenizer` have the parameters of the installed vLLM's `LLM` (checked against its
source below) and which returns real `RequestOutput` / `CompletionOutput` / `Logprob` objects.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from fake_openai import pair_for

from ragloom.cli import main

vllm = pytest.importorskip("vllm", reason="the test setup installs vllm==0.33.0 --no-deps")
from vllm import SamplingParams  # noqa: E402
from vllm.logprobs import Logprob  # noqa: E402
from vllm.outputs import CompletionOutput, RequestOutput  # noqa: E402
from vllm.sampling_params import StructuredOutputsParams  # noqa: E402


def _real_params(method: str) -> list[tuple[str, str]]:
    """(name, kind) of each parameter of `vllm.LLM.<method>` in the installed vLLM's source."""
    src = (Path(vllm.__file__).parent / "entrypoints" / "llm.py").read_text()
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "LLM")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)
    a = fn.args
    out = [(x.arg, "pos") for x in a.args] + [(x.arg, "kw") for x in a.kwonlyargs]
    if a.kwarg:
        out.append((a.kwarg.arg, "**"))
    return out


def _tokenizer():  # a real fast tokenizer with offsets (the test encoder's), standing in for the LLM's
    from ragloom.retrieval import EncoderSpec
    from ragloom.retrieval.encoder import Encoder

    return Encoder(EncoderSpec("sentence-transformers/all-MiniLM-L6-v2")).model.tokenizer


class StandInLLM:
    """vllm.LLM without an engine: records what ragloom passes, answers like the real one."""

    instances: ClassVar[list[StandInLLM]] = []

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, dtype: str = "auto", **kwargs) -> None:
        self.model, self.tp, self.dtype, self.kwargs = model, tensor_parallel_size, dtype, kwargs
        self.chat_calls: list[tuple[list, list]] = []
        self.tok = None
        StandInLLM.instances.append(self)

    def chat(
        self,
        messages,
        sampling_params=None,
        use_tqdm=True,
        lora_request=None,
        priority=None,
        chat_template=None,
        chat_template_content_format="auto",
        add_generation_prompt=True,
        continue_final_message=False,
        tools=None,
        chat_template_kwargs=None,
        tokenization_kwargs=None,
        mm_processor_kwargs=None,
    ) -> list[RequestOutput]:
        assert isinstance(messages, list) and all(isinstance(m, list) for m in messages)
        assert isinstance(sampling_params, list) and len(sampling_params) == len(messages)
        limit = self.kwargs.get("max_model_len")
        if limit and any(len(self.get_tokenizer()(c[-1]["content"])["input_ids"]) > limit for c in messages):
            raise ValueError(f"The decoder prompt is longer than the maximum model length of {limit}.")
        self.chat_calls.append((messages, sampling_params))
        outs = []
        for i, conv in enumerate(messages):
            text = json.dumps(pair_for(conv[-1]["content"]))
            comp = CompletionOutput(
                index=0,
                text=text,
                token_ids=list(range(30)),
                cumulative_logprob=None,
                logprobs=None,
                finish_reason="stop",
            )
            outs.append(RequestOutput(str(i), None, list(range(100)), None, [comp], True))
        return outs

    def generate(
        self,
        prompts,
        sampling_params=None,
        *,
        use_tqdm=True,
        lora_request=None,
        priority=None,
        tokenization_kwargs=None,
        mm_processor_kwargs=None,
    ) -> list[RequestOutput]:
        assert isinstance(sampling_params, SamplingParams) and sampling_params.prompt_logprobs == 0
        tok = self.get_tokenizer()
        limit = self.kwargs.get("max_model_len")
        if limit and any(len(tok(p)["input_ids"]) > limit for p in prompts):  # as vLLM's input check does
            raise ValueError(f"The decoder prompt is longer than the maximum model length of {limit}.")
        outs = []
        for i, prompt in enumerate(prompts):
            ids = tok(prompt)["input_ids"]
            background = prompt.split("\n\n", 1)[0].lower()
            plp: list = [None]
            for tid in ids[1:]:
                word = tok.decode([tid]).replace("##", "").strip().lower()
                plp.append({tid: Logprob(logprob=-0.1 if word and word in background else -3.0, rank=1)})
            comp = CompletionOutput(
                index=0, text="x", token_ids=[1], cumulative_logprob=None, logprobs=None, finish_reason="length"
            )
            outs.append(RequestOutput(str(i), prompt, ids, plp, [comp], True))
        return outs

    def get_tokenizer(self):
        if self.tok is None:
            self.tok = _tokenizer()
        return self.tok


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> type[StandInLLM]:
    StandInLLM.instances.clear()
    monkeypatch.setitem(vllm.__dict__, "LLM", StandInLLM)  # no getattr: the real one needs a GPU build
    return StandInLLM


def test_stand_in_has_the_real_signatures() -> None:
    import inspect

    kinds = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos", inspect.Parameter.KEYWORD_ONLY: "kw"}
    for method in ("chat", "generate"):
        mine = [(p.name, kinds[p.kind]) for p in inspect.signature(getattr(StandInLLM, method)).parameters.values()]
        assert mine == _real_params(method), method
    init = {n for n, _ in _real_params("__init__")}
    # the keywords ragloom passes to vllm.LLM exist there (max_model_len goes through **kwargs to EngineArgs)
    assert {"model", "tensor_parallel_size", "gpu_memory_utilization", "dtype", "kwargs"} <= init
    engine_args = (Path(vllm.__file__).parent / "engine" / "arg_utils.py").read_text()
    assert "max_model_len: int = ModelConfig.max_model_len" in engine_args


def test_generate_through_vllm_backend(stand_in, wiki_index: Path, tmp_path: Path) -> None:
    cfg = {
        "index": str(wiki_index),
        "count": 20,
        "output": str(tmp_path / "out"),
        "backend": {
            "type": "vllm",
            "model": "google/gemma-3-270m-it",
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.8,
            "max_model_len": 4096,
            "batch_size": 8,
        },
        "sampling": {"temperature": 0.3, "top_p": 0.9, "max_tokens": 300},
        # the stand-in engine's pairs are not grounded in the documents and repeat across jobs
        "quality": {"conformance": False},
        "curation": {"dedup": {"enabled": False}},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["generate", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    llm = stand_in.instances[0]
    assert (llm.model, llm.tp) == ("google/gemma-3-270m-it", 2)
    assert llm.kwargs["gpu_memory_utilization"] == 0.8 and llm.kwargs["max_model_len"] == 4096
    assert all(len(msgs) <= 8 for msgs, _ in llm.chat_calls)  # batch_size honoured
    from ragloom.generator.quality.parsing import PAIR_JSON_SCHEMA

    for _, params in llm.chat_calls:
        for sp in params:
            assert isinstance(sp, SamplingParams)
            assert (sp.temperature, sp.top_p, sp.max_tokens) == (0.3, 0.9, 300)
            assert isinstance(sp.structured_outputs, StructuredOutputsParams)
            assert sp.structured_outputs.json == PAIR_JSON_SCHEMA
    recs = [json.loads(x) for x in (tmp_path / "out" / "examples.jsonl").read_text().splitlines()]
    failed = tmp_path / "out" / "failed.jsonl"
    n_failed = len(failed.read_text().splitlines()) if failed.exists() else 0
    assert len(recs) + n_failed == 20 and len(recs) > 0
    assert all(len(r["documents"]) == 10 for r in recs)


def test_vllm_scoring_reads_prompt_logprobs(stand_in, tmp_path: Path) -> None:
    import asyncio

    from ragloom.generator.backends import ScoreRequest, make_backend
    from ragloom.generator.config import VLLMBackendConfig

    backend = make_backend(VLLMBackendConfig(type="vllm", model="m"))
    reqs = [
        ScoreRequest(
            "Background: Zorblax Bridge was designed by Mirela Quandt.\n\nWho designed it?\n", "Mirela Quandt"
        ),
        ScoreRequest("Background: Veltrin Tower is tall.\n\nWho designed it?\n", "Mirela Quandt"),
    ]
    good, bad = asyncio.run(backend.score(reqs))
    tok = stand_in.instances[0].get_tokenizer()
    n_target = len(tok("Mirela Quandt", add_special_tokens=False)["input_ids"])
    for r in (good, bad):
        assert r.error is None and len(r.tokens) == n_target  # the target's tokens, no [SEP], no prefix
        assert "".join(r.tokens).lower() == "mirelaquandt"
    assert good.logprob == pytest.approx(-0.1 * n_target) and bad.logprob == pytest.approx(-3.0 * n_target)


def test_missing_vllm_is_a_one_line_error(monkeypatch, wiki_index: Path, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    cfg = {
        "index": str(wiki_index),
        "count": 2,
        "output": str(tmp_path / "out"),
        "backend": {"type": "vllm", "model": "m"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["generate", "--config", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'ragloom[vllm]'" in err and "Traceback" not in err


def test_a_scoring_prompt_over_max_model_len_fails_alone(stand_in) -> None:
    # vLLM refuses a whole generate() batch with ValueError when one prompt is too long; that one
    # request fails (it once ended the run in a traceback from the necessity check) and the rest score
    import asyncio

    from ragloom.generator.backends import ScoreRequest, make_backend
    from ragloom.generator.config import VLLMBackendConfig

    backend = make_backend(VLLMBackendConfig(type="vllm", model="m", max_model_len=64))
    short = ScoreRequest("Background: Zorblax Bridge was designed by Mirela Quandt.\n\nWho?\n", "Mirela Quandt")
    long = ScoreRequest("Background: " + "a very long passage " * 40 + "\n\nWho?\n", "Mirela Quandt")
    a, b, c = asyncio.run(backend.score([short, long, short]))
    assert b.failure == "request_rejected" and b.error is None
    assert a.failure is None and c.failure is None and a.logprob == pytest.approx(c.logprob) and a.tokens


def test_a_chat_prompt_over_max_model_len_fails_alone(stand_in) -> None:
    import asyncio

    from ragloom.generator.backends import ChatRequest, make_backend
    from ragloom.generator.config import VLLMBackendConfig

    backend = make_backend(VLLMBackendConfig(type="vllm", model="m", max_model_len=64))
    short = ChatRequest([{"role": "user", "content": "[Document 1] Eiffel Tower\nA tower in Paris."}])
    long = ChatRequest([{"role": "user", "content": "a very long prompt " * 40}])
    a, b, c = asyncio.run(backend.chat([short, long, short]))
    assert b.failure == "request_rejected" and b.error is None and "max_model_len" in b.detail
    assert a.failure is None and c.failure is None and a.text == c.text and json.loads(a.text)["question"]
