"""Three tiny ONNX graphs that move decoder rows on the device, for the I/O-binding path (service/runtime.py).

With I/O binding on CUDA the decoder state and the encoder outputs stay on the GPU between steps. When the
batch's rows change (a beam picks its origins, a sentence retires, newcomers join) they have to be gathered,
and doing that on the host would cost two PCIe copies of every tensor. These graphs do it where the data is:

  gather.onnx  state (B, L, K, H), rows (R,)                      -> state[rows]
  take.onnx    enc (B, S, E), keys (B, S, A), mask (B, S), rows (R,), src_len (1,)
               -> enc[rows, :src_len], keys[rows, :src_len], mask[rows, :src_len]
  join.onnx    the batch's enc, keys, mask, state; a newcomer's enc, keys, mask, state (one row per sentence);
               rep (R,) -> both padded along the source axis to the longer one, the newcomers' rows repeated
               by rep (beam k = k rows), old rows first: concat(old, new[rep])

Pure data movement (Gather, Slice, Pad with zeros / False, Concat): the results are bit-identical to the numpy
indexing the host path does. They run on any provider, so the tests run them on CPU.

The service does not depend on the `onnx` package: the graphs are built here with onnx.helper and committed
under service/graphs/ (`python -m service.rowgraphs` rewrites them; tests/test_iobinding.py checks that the
committed files are what this code builds). Opset 13 / IR 7, so that any onnxruntime the service supports
(>= 1.18) loads them.
"""
from __future__ import annotations

from pathlib import Path

GRAPH_DIR = Path(__file__).resolve().parent / "graphs"
NAMES = ("gather", "take", "join")
OPSET, IR_VERSION = 13, 7


def build() -> dict[str, bytes]:
    """name -> serialized ModelProto (deterministic bytes)."""
    from onnx import TensorProto, helper

    F, B, I = TensorProto.FLOAT, TensorProto.BOOL, TensorProto.INT64
    inp = helper.make_tensor_value_info

    def model(name, nodes, inputs, outputs, inits=()):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="service.rowgraphs")
        m.ir_version = IR_VERSION
        return m.SerializeToString(deterministic=True)

    def const(name, vals):
        return helper.make_tensor(name, I, [len(vals)], vals)

    src4 = ["B", "S", "E"], ["B", "S", "A"], ["B", "S"], ["B", "L", "K", "H"]
    out = {}
    out["gather"] = model(
        "gather", [helper.make_node("Gather", ["state", "rows"], ["out"], axis=0)],
        [inp("state", F, src4[3]), inp("rows", I, ["R"])], [inp("out", F, ["R", "L", "K", "H"])])

    nodes = []
    for x in ("enc", "keys", "mask"):
        nodes += [helper.make_node("Gather", [x, "rows"], [f"{x}_rows"], axis=0),
                  helper.make_node("Slice", [f"{x}_rows", "zero", "src_len", "one"], [f"{x}_out"])]
    out["take"] = model(
        "take", nodes,
        [inp("enc", F, src4[0]), inp("keys", F, src4[1]), inp("mask", B, src4[2]), inp("rows", I, ["R"]),
         inp("src_len", I, [1])],
        [inp("enc_out", F, ["R", "T", "E"]), inp("keys_out", F, ["R", "T", "A"]), inp("mask_out", B, ["R", "T"])],
        [const("zero", [0]), const("one", [1])])

    # join: S = max(S_old, S_new); pad each side's source axis up to S, repeat the newcomers' rows, concat
    nodes = [helper.make_node("Shape", ["enc"], ["shape_old"]), helper.make_node("Shape", ["new_enc"], ["shape_new"]),
             helper.make_node("Slice", ["shape_old", "one", "two", "zero"], ["s_old"]),
             helper.make_node("Slice", ["shape_new", "one", "two", "zero"], ["s_new"]),
             helper.make_node("Max", ["s_old", "s_new"], ["s"]),
             helper.make_node("Sub", ["s", "s_old"], ["pad_old"]), helper.make_node("Sub", ["s", "s_new"], ["pad_new"])]
    for side, pre in (("old", ""), ("new", "new_")):
        # pads are [begin of every axis..., end of every axis...]; only the end of axis 1 (source) is padded
        nodes += [helper.make_node("Concat", ["zeros4", f"pad_{side}", "zeros1"], [f"pads3_{side}"], axis=0),
                  helper.make_node("Concat", ["zeros3", f"pad_{side}"], [f"pads2_{side}"], axis=0)]
        for x in ("enc", "keys"):
            nodes.append(helper.make_node("Pad", [pre + x, f"pads3_{side}"], [f"{x}_{side}_padded"], mode="constant"))
        # the mask is bool: pad it as float (0.0 -> False), exactly; Pad-13 has no bool kernel everywhere
        nodes += [helper.make_node("Cast", [pre + "mask"], [f"maskf_{side}"], to=F),
                  helper.make_node("Pad", [f"maskf_{side}", f"pads2_{side}"], [f"maskf_{side}_padded"], mode="constant"),
                  helper.make_node("Cast", [f"maskf_{side}_padded"], [f"mask_{side}_padded"], to=B)]
    for x in ("enc", "keys", "mask"):
        nodes += [helper.make_node("Gather", [f"{x}_new_padded", "rep"], [f"{x}_new_rep"], axis=0),
                  helper.make_node("Concat", [f"{x}_old_padded", f"{x}_new_rep"], [f"{x}_out"], axis=0)]
    nodes += [helper.make_node("Gather", ["new_state", "rep"], ["state_new_rep"], axis=0),
              helper.make_node("Concat", ["state", "state_new_rep"], ["state_out"], axis=0)]
    out["join"] = model(
        "join", nodes,
        [inp("enc", F, ["B", "S", "E"]), inp("keys", F, ["B", "S", "A"]), inp("mask", B, ["B", "S"]),
         inp("state", F, src4[3]), inp("new_enc", F, ["N", "U", "E"]), inp("new_keys", F, ["N", "U", "A"]),
         inp("new_mask", B, ["N", "U"]), inp("new_state", F, ["N", "L", "K", "H"]), inp("rep", I, ["R"])],
        [inp("enc_out", F, ["C", "T", "E"]), inp("keys_out", F, ["C", "T", "A"]), inp("mask_out", B, ["C", "T"]),
         inp("state_out", F, ["C", "L", "K", "H"])],
        [const("zero", [0]), const("one", [1]), const("two", [2]), const("zeros4", [0, 0, 0, 0]),
         const("zeros3", [0, 0, 0]), const("zeros1", [0])])
    return out


def load() -> dict[str, bytes]:
    """The committed graphs, name -> bytes (what Runtime opens as sessions)."""
    return {n: (GRAPH_DIR / f"{n}.onnx").read_bytes() for n in NAMES}


def main() -> None:
    GRAPH_DIR.mkdir(exist_ok=True)
    for name, data in build().items():
        (GRAPH_DIR / f"{name}.onnx").write_bytes(data)
        print(f"wrote {GRAPH_DIR / name}.onnx ({len(data)} bytes)")


if __name__ == "__main__":
    main()
