"""A BERT sentence encoder as an ONNX graph, written from a model's safetensors weights without torch.

The graph is what sentence-transformers computes for all-MiniLM-L6-v2 (`modules.json`: Transformer, mean
Pooling, Normalize), in opset-17 operators plus ONNX Runtime's fused `Attention` (com.microsoft): token +
position embeddings (token type 0 folded into the position table: we never send a second segment), LayerNorm,
then per layer masked multi-head self-attention, the residual LayerNorms and the erf GELU feed-forward; then the
attention-masked mean over tokens and L2 normalisation. Its output is the sentence embedding itself.

The token embedding table (30,522 x 384 floats, 45 MiB) is not in the graph: its input is the looked-up rows
(`token_embeddings`), and the table is a file of its own that the encoder maps into memory (encoder.py). Inside
the graph, the table was an initializer that every session (the server's and its index child's) held in private
memory: most of an int8 session, and a fifth of an idle server's RSS. Mapped, only the pages of the rows in use are
read, and the processes share them. The vectors are the same to the bit (measured on 400 SciFact abstracts).

Written by hand rather than exported: an export needs torch (and `optimum`), which `serve` must not need,
and the graph is small. ONNX Runtime's own optimiser fuses the LayerNorm, GELU and MatMul+Add patterns at
load. Compared with the torch model on the same texts (tests/test_onnx_model.py): max difference 2e-7.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

OPSET = 17
GRAPH_VERSION = "3"  # bump when the graph changes: it is part of the cache key


def _config(model_dir: Path) -> dict:
    cfg = json.loads((model_dir / "config.json").read_text())
    if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu":
        raise ValueError(f"{model_dir}: only BERT encoders with the erf GELU are supported")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{model_dir}: only absolute position embeddings are supported")
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.exists() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        raise ValueError(f"{model_dir}: only mean pooling is supported")
    return cfg


def build_graph(model_dir: Path) -> tuple[bytes, np.ndarray]:
    """The serialised ONNX model (inputs token_embeddings: float32 [batch, seq, hidden], the rows of the token
    table for the input ids; attention_mask: int64 [batch, seq]; output sentence_embedding: float32 [batch,
    hidden], unit length), and the token table: float32 [vocabulary, hidden]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    cfg = _config(model_dir)
    weights = load_file(str(model_dir / "model.safetensors"))
    hidden, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

    inits: list = []
    nodes: list = []

    def w(name: str) -> np.ndarray:
        return weights[prefix + name]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(nodes)}", **attrs))
        return out

    def linear(x: str, name: str, out: str) -> str:
        # torch Linear keeps weight as [out, in]: MatMul wants [in, out].
        wt = const(f"{name}.weight_t", w(f"{name}.weight").T)
        b = const(f"{name}.bias", w(f"{name}.bias"))
        return node("Add", [node("MatMul", [x, wt], f"{out}_mm"), b], out)

    def layer_norm(x: str, name: str, out: str) -> str:
        return node("LayerNormalization", [x, const(f"{name}.weight", w(f"{name}.weight")),
                                           const(f"{name}.bias", w(f"{name}.bias"))], out, axis=-1, epsilon=eps)

    # --- embeddings
    positions = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    const("pos_table", positions.astype(np.float32))
    const("zero_1d", np.array([0], dtype=np.int64))
    const("one_1d", np.array([1], dtype=np.int64))
    const("axis0", np.array([0], dtype=np.int64))
    node("Shape", ["token_embeddings"], "emb_shape")
    node("Slice", ["emb_shape", "one_1d", "shape_end"], "seq_len")
    const("shape_end", np.array([2], dtype=np.int64))
    node("Slice", ["pos_table", "zero_1d", "seq_len", "axis0"], "pos")
    x = layer_norm(node("Add", ["token_embeddings", "pos"], "emb"), "embeddings.LayerNorm", "h0")

    # --- the padding mask: int32 [batch, seq] for Attention; float [batch, seq, 1] for pooling
    node("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    const("one_f", np.array(1.0, dtype=np.float32))
    const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))

    for i in range(layers):
        p = f"encoder.layer.{i}"
        a = f"l{i}"

        # ONNX Runtime's fused Attention (com.microsoft): Q, K and V in one [hidden, 3 * hidden] MatMul, the
        # scaled, masked softmax and the weighted sum in one kernel. Measured: the same arithmetic as the
        # plain operators (cosine 1.0000) at a fraction of their time.
        qkv_w = np.concatenate([w(f"{p}.attention.self.{kind}.weight").T for kind in ("query", "key", "value")],
                               axis=1)
        qkv_b = np.concatenate([w(f"{p}.attention.self.{kind}.bias") for kind in ("query", "key", "value")])
        nodes.append(helper.make_node(
            "Attention", [x, const(f"{a}.qkv_w", qkv_w), const(f"{a}.qkv_b", qkv_b), "mask_i32"], [f"{a}_ctx_m"],
            name=f"Attention_{i}", domain="com.microsoft", num_heads=heads))
        ctx = f"{a}_ctx_m"
        att = linear(ctx, f"{p}.attention.output.dense", f"{a}_att")
        x = layer_norm(node("Add", [att, x], f"{a}_res1"), f"{p}.attention.output.LayerNorm", f"{a}_h1")
        inter = linear(x, f"{p}.intermediate.dense", f"{a}_inter")
        erf = node("Erf", [node("Div", [inter, "sqrt2"], f"{a}_div")], f"{a}_erf")
        gelu = node("Mul", [node("Mul", [inter, node("Add", [erf, "one_f"], f"{a}_erf1")], f"{a}_g"), "half"],
                    f"{a}_gelu")
        out = linear(gelu, f"{p}.output.dense", f"{a}_out")
        x = layer_norm(node("Add", [out, x], f"{a}_res2"), f"{p}.output.LayerNorm", f"{a}_h2")

    # --- mean over real tokens, then unit length
    const("last_axis", np.array([-1], dtype=np.int64))
    const("seq_axis", np.array([1], dtype=np.int64))
    const("tiny", np.array(1e-9, dtype=np.float32))
    const("tiny_norm", np.array(1e-12, dtype=np.float32))
    node("Unsqueeze", ["mask_f", "last_axis"], "mask_3d")
    summed = node("ReduceSum", [node("Mul", [x, "mask_3d"], "masked"), "seq_axis"], "summed", keepdims=0)
    counts = node("Max", [node("ReduceSum", ["mask_3d", "seq_axis"], "counts_raw", keepdims=0), "tiny"], "counts")
    mean = node("Div", [summed, counts], "mean")
    norm = node("Max", [node("ReduceL2", [mean], "norm_raw", axes=[-1], keepdims=1), "tiny_norm"], "norm")
    node("Div", [mean, norm], "sentence_embedding")

    graph = helper.make_graph(
        nodes, "sentence_encoder",
        [helper.make_tensor_value_info("token_embeddings", TensorProto.FLOAT, ["batch", "seq", hidden]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="artifact-mcp")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), np.ascontiguousarray(w("embeddings.word_embeddings.weight"), dtype=np.float32)
