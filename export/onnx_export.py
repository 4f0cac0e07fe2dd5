"""`python -m export onnx`: checkpoint -> encoder.onnx + decoder_step.onnx + tokenizers + model.json.

Checks before it saves: the ONNX checker, then parity with PyTorch on fixed sentences (log-probs within
1e-4 along the greedy path, identical greedy output through the service's own engine). Refuses to
overwrite an existing model directory without --force, like CTranslate2's converter.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from service import contract

from .model import Seq2Seq, Seq2SeqConfig

OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_SENTENCES = [
    "How are you?", "I love you.", "Tom doesn't know what to do.", "Where is the station?",
    "It's raining.", "We have to talk about what happened yesterday at school.", "Thank you very much!",
    "Can you help me?",
]
ATTRIBUTION = "Sentence pairs from the Tatoeba project (https://tatoeba.org), CC-BY 2.0 FR."


class EncoderGraph(nn.Module):
    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.encoder = model.encoder

    def forward(self, src):                          # (B, S) int64
        return self.encoder(src)                     # enc (B,S,2H), keys (B,S,A), mask (B,S), state (B,L,K,Hd)


class DecoderStepGraph(nn.Module):
    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.decoder = model.decoder

    def forward(self, y_prev, state, enc, keys, mask):
        logits, new_state, attn = self.decoder.step(y_prev, state, enc, keys, mask)
        return torch.log_softmax(logits, dim=-1), new_state, attn   # (B,V), (B,L,K,Hd), (B,S)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="training run directory (best.pt, tokenizers, test.tsv)")
    p.add_argument("--out", required=True, help="model directory to write, e.g. models/eng-pol")
    p.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    p.add_argument("--version", default=None, help="model version (default: today's date)")
    p.add_argument("--no-eval", action="store_true", help="skip the BLEU/chrF evaluation on the run's test split")
    p.add_argument("--eval-beams", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="write dynamically int8-quantized graphs (parity is checked on the float graphs first)")


def load_checkpoint(run_dir: Path) -> tuple[Seq2Seq, dict]:
    ck = torch.load(run_dir / "best.pt", weights_only=False)
    model = Seq2Seq(Seq2SeqConfig(**ck["config"]))
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def export_graphs(model: Seq2Seq, out: Path) -> None:
    import onnx

    cfg = model.cfg
    src = torch.tensor([[5, 6, 7, cfg.eos_id], [8, 9, cfg.eos_id, cfg.pad_id]])
    with torch.no_grad():
        enc, keys, mask, state = model.encoder(src)
    torch.onnx.export(EncoderGraph(model).eval(), (src,), str(out / "encoder.onnx"), dynamo=False, opset_version=OPSET,
                      input_names=contract.ENCODER_INPUTS, output_names=contract.ENCODER_OUTPUTS,
                      dynamic_axes={"src": {0: "batch", 1: "src_len"}, "enc": {0: "batch", 1: "src_len"},
                                    "keys": {0: "batch", 1: "src_len"}, "mask": {0: "batch", 1: "src_len"},
                                    "state": {0: "batch"}})
    y = torch.tensor([cfg.bos_id, cfg.bos_id])
    torch.onnx.export(DecoderStepGraph(model).eval(), (y, state, enc, keys, mask), str(out / "decoder_step.onnx"),
                      dynamo=False, opset_version=OPSET,
                      input_names=contract.DECODER_INPUTS, output_names=contract.DECODER_OUTPUTS,
                      dynamic_axes={"y_prev": {0: "batch"}, "state": {0: "batch"}, "enc": {0: "batch", 1: "src_len"},
                                    "keys": {0: "batch", 1: "src_len"}, "mask": {0: "batch", 1: "src_len"},
                                    "logprobs": {0: "batch"}, "new_state": {0: "batch"},
                                    "attention": {0: "batch", 1: "src_len"}})
    for name in ("encoder.onnx", "decoder_step.onnx"):
        onnx.checker.check_model(onnx.load(str(out / name)), full_check=True)


def check_parity(model: Seq2Seq, model_dir: Path, sentences=PARITY_SENTENCES) -> dict:
    """Torch vs ONNX on fixed sentences; raises if they disagree. Uses the service's own engine, without its
    guards against degenerate output (the PyTorch reference is the model's plain greedy search)."""
    from service.translator import Translator

    tr = Translator(model_dir, provider="cpu", guards=False)
    max_diff, greedy_same = 0.0, True
    for text in sentences:
        ids = tr.encode_source(text)
        src = torch.tensor([ids])
        ref = model.greedy(src, max_len=tr.max_length_for(len(ids)))[0]
        ours = tr.translate_batch([text])[0].hypotheses[0].tokens
        greedy_same &= ours == [tr.sp_tgt.id_to_piece(x) for x in ref]
        # log-probs along the reference path, step by step, torch vs onnxruntime
        with torch.no_grad():
            enc, keys, mask, state = model.encoder(src)
        o_enc, o_keys, o_mask, o_state = tr.runtime.encode(src.numpy())
        y = [model.cfg.bos_id] + ref
        for tok in y[:len(ref) + 1]:
            with torch.no_grad():
                logits, state, _ = model.decoder.step(torch.tensor([tok]), state, enc, keys, mask)
            o_logp, o_state, _ = tr.runtime.step(np.array([tok], dtype=np.int64), o_state, o_enc, o_keys, o_mask)
            diff = float(np.abs(torch.log_softmax(logits, -1).numpy() - o_logp).max())
            max_diff = max(max_diff, diff)
    batch = tr.translate_batch(sentences)
    batch_same = [r.text for r in batch] == [tr.translate_batch([s])[0].text for s in sentences]
    report = {"sentences": len(sentences), "max_abs_logprob_diff": max_diff, "greedy_identical": bool(greedy_same),
              "batch_equals_single": bool(batch_same), "tolerance": PARITY_TOLERANCE}
    if max_diff >= PARITY_TOLERANCE or not greedy_same:
        raise RuntimeError(f"ONNX parity check failed, not writing the model: {report}")
    return report


def quantize_int8(model_dir: Path) -> dict:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly) of both graphs, in place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from service.translator import Translator

    float_tr = Translator(model_dir, provider="cpu")
    before = [r.text for r in float_tr.translate_batch(PARITY_SENTENCES)]
    del float_tr
    for name in ("encoder.onnx", "decoder_step.onnx"):
        src, dst = model_dir / name, model_dir / f"{name}.int8"
        # LSTM layers stay float: DynamicQuantizeLSTM quantizes a whole batch with one scale (batch-dependent
        # results, like DynamicQuantizeLinear below); the encoder runs once per sentence, the matmuls of the
        # decoder step are where the time goes.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        rows = per_row_activation_scales(dst)
        dst.replace(src)
        print(f"int8: {name}: {rows} activation quantizers made per-row", flush=True)
    tr = Translator(model_dir, provider="cpu")
    after = [r.text for r in tr.translate_batch(PARITY_SENTENCES)]
    alone = [tr.translate_batch([s])[0].text for s in PARITY_SENTENCES]
    same = sum(a == b for a, b in zip(before, after))
    print(f"int8: {same}/{len(before)} parity sentences translate as the float model does", flush=True)
    if alone != after:
        raise RuntimeError("int8: batched translations differ from one-at-a-time ones; not writing the model")
    return {"type": "dynamic int8 (onnxruntime.quantization.quantize_dynamic, QInt8 weights), activations "
                    "quantized per row (symmetric, uint8 with zero point 128), so batching never changes a result",
            "parity_sentences_identical_to_float": f"{same}/{len(before)}", "batch_equals_single": True}


def per_row_activation_scales(path: Path) -> int:
    """Rewrites every DynamicQuantizeLinear of a dynamically quantized graph to quantize each row on its own.

    DynamicQuantizeLinear takes one scale for the whole tensor, i.e. for every sentence in the batch at once:
    a sentence's translation then depends on what it is batched with (with the shipped model 72 of 320 test
    sentences translated differently in a batch of 64 than alone). Here each row (last axis) gets its own scale,
    max|x| / 127, with the fixed zero point 128 that MatMulInteger accepts as a scalar; integer matmuls are
    exact, so a row's result no longer depends on the other rows. Returns how many quantizers were rewritten.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import numpy as np

    model = onnx.load(str(path))
    g = model.graph
    nodes, n = [], 0
    for node in g.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (q, scale, zp) = node.input[0], node.output
        p = f"{x}_rowq"
        consts = {f"{p}_127": np.array(127, np.float32), f"{p}_128": np.array(128, np.float32),
                  f"{p}_eps": np.array(1e-12, np.float32), f"{p}_lo": np.array(0, np.float32),
                  f"{p}_hi": np.array(255, np.float32)}
        g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
        g.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), zp))
        nodes += [
            helper.make_node("Abs", [x], [f"{p}_abs"]),
            helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1),   # (..., 1)
            helper.make_node("Max", [f"{p}_max", f"{p}_eps"], [f"{p}_maxe"]),
            helper.make_node("Div", [f"{p}_maxe", f"{p}_127"], [scale]),
            helper.make_node("Div", [x, scale], [f"{p}_div"]),
            helper.make_node("Round", [f"{p}_div"], [f"{p}_round"]),
            helper.make_node("Add", [f"{p}_round", f"{p}_128"], [f"{p}_shift"]),
            helper.make_node("Clip", [f"{p}_shift", f"{p}_lo", f"{p}_hi"], [f"{p}_clip"]),
            helper.make_node("Cast", [f"{p}_clip"], [q], to=TensorProto.UINT8),
        ]
        n += 1
    # The quantizer emits a per-tensor scale S that a Mul folds with the weight scale, C = S * w_scale, and
    # y = Cast(MatMulInteger(...)) * C. onnxruntime fuses that chain into MatMulIntegerToFloat, which reads S
    # as a scalar (or per column) and gets a per-row S wrong; so the fold gets 1.0 and y is scaled by S after.
    row_scales = {node.output[1] for node in g.node if node.op_type == "DynamicQuantizeLinear"}
    one = "per_row_one"
    g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
    folded = {}
    for node in nodes:
        if node.op_type == "Mul" and (hit := [i for i in node.input if i in row_scales]):
            node.input[list(node.input).index(hit[0])] = one
            folded[node.output[0]] = hit[0]
    scaled = []
    for node in nodes:
        scaled.append(node)
        if node.op_type == "Mul" and (hit := [i for i in node.input if i in folded]):
            y = node.output[0]
            node.output[0] = f"{y}_before_row_scale"
            scaled.append(helper.make_node("Mul", [node.output[0], folded[hit[0]]], [y]))
    nodes = scaled
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return n


def _has_placeholders(run_dir: Path) -> bool:
    """Trained with --placeholders: the placeholder symbols are pieces of the source vocabulary."""
    import sentencepiece as spm

    from service.placeholders import SYMBOLS

    sp = spm.SentencePieceProcessor(model_file=str(run_dir / "spm_en.model"))
    return sp.piece_to_id(SYMBOLS[0]) != sp.unk_id()


def _training_data(run_dir: Path) -> dict:
    """What the model was trained on, with every source's credit line and licence (from corpus.json when the
    run was built by `python -m export corpus`)."""
    if not (run_dir / "corpus.json").exists():
        return {"data": "Tatoeba eng-pol (manythings.org Anki export)", "license": "CC-BY 2.0 FR",
                "attribution": ATTRIBUTION}
    corpus = json.loads((run_dir / "corpus.json").read_text())
    return {"data": "Tatoeba eng-pol plus ../shared/data/extra (python -m export corpus)",
            "sources": [{"file": name, "kind": s["kind"], "pairs": s["kept"], "repeat": s.get("repeat", 1),
                         "credit": s["credit"], "license": s["licence"]}
                        for name, s in corpus["sources"].items() if s["kept"]],
            "attribution": ATTRIBUTION}


def run(args) -> Path:
    run_dir, out = Path(args.run), Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists; pass --force to overwrite it")
    model, ck = load_checkpoint(run_dir)
    cfg = model.cfg
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        export_graphs(model, tmp)
        shutil.copy(run_dir / "spm_en.model", tmp / "source.spm.model")
        shutil.copy(run_dir / "spm_pl.model", tmp / "target.spm.model")
        for extra in ("test.tsv", "loss_curve.png"):
            if (run_dir / extra).exists():
                shutil.copy(run_dir / extra, tmp / extra)
        history = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").exists() else []
        card = contract.ModelCard(
            format_version=contract.FORMAT_VERSION,
            name=out.name,
            version=args.version or dt.date.today().isoformat(),
            task={"source": "en", "target": "pl"},
            architecture=contract.Architecture(
                type="attention-seq2seq", encoder=f"bidirectional {cfg.cell.upper()}",
                attention="additive (Bahdanau)", decoder=f"{cfg.cell.upper()} with context fed to its input",
                cell=cfg.cell, emb=cfg.emb, enc_hidden=cfg.enc_hidden, dec_hidden=cfg.dec_hidden,
                attn=cfg.attn, enc_layers=cfg.enc_layers, dec_layers=cfg.dec_layers,
                decoder_state_shape=(cfg.dec_layers, cfg.state_parts, cfg.dec_hidden),
                parameters=model.num_params()),
            vocab=contract.Vocab(source_size=cfg.src_vocab, target_size=cfg.tgt_vocab, pad_id=cfg.pad_id,
                                 bos_id=cfg.bos_id, eos_id=cfg.eos_id, unk_id=contract.UNK_ID),
            files=contract.Files(),
            onnx={"opset": OPSET, "exporter": f"torch.onnx (TorchScript) torch {torch.__version__}",
                  **contract.graph_io()},
            tokenizer={"library": "sentencepiece", "model_type": "unigram"},
            placeholders=_has_placeholders(run_dir),
            training={**_training_data(run_dir), "best_epoch": ck.get("epoch"),
                      "epochs_run": len(history), "val_loss": ck.get("val_loss"),
                      "split": "by English sentence, seeded; test split in test.tsv"},
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        contract.write(tmp / "model.json", card)
        card.parity = check_parity(model, tmp)
        print(f"parity ok: {card.parity}", flush=True)
        if getattr(args, "quantize", None) == "int8":
            card.quantization = quantize_int8(tmp)
        if not args.no_eval and (tmp / "test.tsv").exists():
            from .evaluate import evaluate

            card.quality = evaluate(tmp, tmp / "test.tsv", beams=args.eval_beams)
        contract.write(tmp / "model.json", card)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"wrote {out}", flush=True)
    return out
