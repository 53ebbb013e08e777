"""Convert a sentence-transformers model for OpenVINO or ONNX Runtime, in process, without optimum.

The model's own layout is read from its sentence-transformers files: `modules.json` (a Transformer,
a Pooling module, optionally Normalize), the pooling mode from the Pooling module's `config.json`,
`max_seq_length` and `do_lower_case` from `sentence_bert_config.json`. The Hugging Face transformer is
wrapped with that pooling (and normalisation) into one torch module that maps token ids to sentence
embeddings, and that module is converted with `openvino.convert_model` or `torch.onnx.export`. Models
with other modules (Dense, a router, images) are refused: use `encoder_backend: torch` for them.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragloom.errors import ConfigError

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
# the pooling modes this wrapper computes exactly as sentence-transformers does
POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "lasttoken")
_OLD_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_lasttoken": "lasttoken",
    "pooling_mode_weightedmean_tokens": "weightedmean",
}


@dataclass(frozen=True)
class StLayout:
    """What a sentence-transformers model directory says about itself."""

    transformer_dir: Path
    pooling: tuple[str, ...]
    normalize: bool
    max_seq_length: int
    do_lower_case: bool


def _short(name: str) -> str:
    """`sentence_transformers.models.Pooling` and the 6.x `...modules.pooling.Pooling` both -> Pooling."""
    return name.rsplit(".", 1)[-1]


def read_layout(model_dir: str | Path) -> StLayout:
    """Read the model's modules, pooling, normalisation and sequence length; ConfigError if unsupported."""
    d = Path(model_dir)
    modules_file = d / "modules.json"
    if not modules_file.is_file():
        raise ConfigError(
            f"{d}: no modules.json; encoder_backend openvino/onnx convert a local sentence-transformers model "
            "directory: use encoder_backend torch for this model"
        )
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [_short(m["type"]) for m in modules]
    if not kinds or kinds[0] != "Transformer" or any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
        raise ConfigError(
            f"{modules_file}: modules {', '.join(kinds)} are not Transformer, Pooling[, Normalize]; "
            "use encoder_backend torch for this model"
        )
    transformer_dir = d / modules[0].get("path", "")
    pooling: tuple[str, ...] = ("mean",)  # sentence-transformers' default when a model has no Pooling module
    for m in modules:
        if _short(m["type"]) == "Pooling":
            pooling = _pooling_modes(json.loads((d / m["path"] / "config.json").read_text(encoding="utf-8")))
    bad = [p for p in pooling if p not in POOLING_MODES]
    if bad:
        raise ConfigError(f"{d}: pooling {', '.join(bad)} is not converted; use encoder_backend torch for this model")
    st_cfg: dict[str, Any] = {}
    for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
        if (transformer_dir / name).is_file():
            st_cfg = json.loads((transformer_dir / name).read_text(encoding="utf-8"))
            break
    max_len = st_cfg.get("max_seq_length") or _model_max_length(transformer_dir)
    return StLayout(
        transformer_dir=transformer_dir,
        pooling=pooling,
        normalize="Normalize" in kinds,
        max_seq_length=int(max_len),
        do_lower_case=bool(st_cfg.get("do_lower_case", False)),
    )


def _pooling_modes(cfg: dict[str, Any]) -> tuple[str, ...]:
    if "pooling_mode" in cfg:  # sentence-transformers 6: a mode name or a list of them
        mode = cfg["pooling_mode"]
        return tuple(mode) if isinstance(mode, list) else (str(mode),)
    return tuple(mode for key, mode in _OLD_KEYS.items() if cfg.get(key))


def _model_max_length(transformer_dir: Path) -> int:
    """The tokenizer's model_max_length, capped by the model's position embeddings (as sentence-transformers)."""
    tok = json.loads((transformer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg = json.loads((transformer_dir / "config.json").read_text(encoding="utf-8"))
    limits = [v for v in (tok.get("model_max_length"), cfg.get("max_position_embeddings")) if isinstance(v, int)]
    return min(v for v in limits if v < 10**6) if limits else 512


def pooled_module(layout: StLayout) -> Any:
    """(module, input names): the transformer plus the model's pooling and normalisation as one torch
    module (token ids -> sentence embeddings), and the inputs the transformer takes."""
    import torch
    from transformers import AutoModel

    from .quiet import quiet_loading

    with quiet_loading():
        hf = AutoModel.from_pretrained(str(layout.transformer_dir), attn_implementation="eager")
    hf.eval()
    takes_types = "token_type_ids" in inspect.signature(hf.forward).parameters

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kw = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            tokens = self.hf(input_ids=input_ids, attention_mask=attention_mask, **kw)[0]
            out = torch.cat([_pool(mode, tokens, attention_mask) for mode in layout.pooling], dim=-1)
            return torch.nn.functional.normalize(out, p=2.0, dim=1) if layout.normalize else out

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])
    return Pooled().eval(), names


def _pool(mode: str, tokens: Any, mask: Any) -> Any:
    """sentence-transformers' Pooling._forward_padded for one mode (no prompt masking)."""
    import torch

    if mode == "cls":
        first = mask.to(torch.int32).argmax(dim=1)
        return torch.gather(tokens, 1, first.view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])).squeeze(1)
    m = mask.unsqueeze(-1).to(tokens.dtype)
    if mode == "max":
        return tokens.masked_fill(m == 0, float("-inf")).max(dim=1).values
    if mode == "lasttoken":
        seq_len = tokens.shape[1]
        values, idx = mask.to(torch.int32).flip(1).max(1)
        idx = torch.where(values == 0, seq_len - 1, idx)
        gather = (seq_len - idx - 1).view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
        return torch.gather(tokens * m, 1, gather).squeeze(1)
    total = torch.clamp(m.sum(dim=1), min=1e-9)
    summed = (tokens * m).sum(dim=1)
    return summed / (total if mode == "mean" else torch.sqrt(total))


def _example(names: list[str]) -> dict[str, Any]:
    import torch

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 2088, 2003, 102]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    full = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {n: full[n] for n in names}


def convert_openvino(layout: StLayout, out_xml: Path) -> None:
    """openvino.convert_model on the pooled module, dynamic batch and length, saved in f32 (no fp16 compression)."""
    import torch

    from .quiet import import_openvino, openvino_telemetry_off

    ov = import_openvino()

    module, names = pooled_module(layout)
    with torch.no_grad(), openvino_telemetry_off():
        shapes = [(n, ov.PartialShape([-1, -1]), ov.Type.i64) for n in names]
        model = ov.convert_model(module, example_input=_example(names), input=shapes)
    for out in model.outputs:
        out.get_tensor().set_names({"sentence_embedding"})
    ov.save_model(model, str(out_xml), compress_to_fp16=False)


def convert_onnx(layout: StLayout, out_onnx: Path) -> None:
    """torch.onnx.export (TorchScript exporter) of the pooled module, dynamic batch and length."""
    import torch

    module, names = pooled_module(layout)
    example = _example(names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"sentence_embedding": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(
            module,
            tuple(example[n] for n in names),
            str(out_onnx),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def quantize_onnx_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights, per channel (the variant that kept the most
    parity in the issue's measurements; the defaults broke retrieval)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=True, weight_type=QuantType.QInt8)
