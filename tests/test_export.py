"""The export pipeline: split, tokenizers, model shapes, ONNX parity, --force, resumable training."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from conftest import train_args
from export import onnx_export, train
from export.data import read_tsv, split_by_source
from export.model import Seq2Seq, Seq2SeqConfig


def test_split_is_by_english_sentence_and_seeded(run_dir):
    parts = {n: read_tsv(run_dir / f"{n}.tsv") for n in ("train", "val", "test")}
    src = {n: {en for en, _ in p} for n, p in parts.items()}
    assert not src["train"] & src["test"] and not src["train"] & src["val"] and not src["val"] & src["test"]
    pairs = parts["train"] + parts["val"] + parts["test"]
    again = split_by_source(pairs, 8, 8, seed=13)
    assert split_by_source(pairs, 8, 8, seed=13) == again          # reproducible
    assert {en for en, _ in split_by_source(pairs, 8, 8, seed=14)[2]} != {en for en, _ in again[2]}


def test_tokenizer_round_trip(translator):
    for text in ["How are you?", "They like the book too.", "Ja widzę kota."]:
        sp = translator.sp_src if text.isascii() else translator.sp_tgt
        assert sp.decode(sp.encode(text)) == text
    ids = translator.encode_source("  How   are you?  ")
    assert ids[-1] == translator.info.eos_id and ids == translator.encode_source("How are you?")
    assert translator.encode_source("   ") == []


@pytest.mark.parametrize("cell,parts", [("lstm", 2), ("gru", 1)])
def test_model_shapes(cell, parts):
    cfg = Seq2SeqConfig(src_vocab=50, tgt_vocab=60, emb=16, enc_hidden=8, dec_hidden=12, attn=10, cell=cell)
    model = Seq2Seq(cfg).eval()
    src = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
    enc, keys, mask, state = model.encoder(src)
    assert enc.shape == (2, 4, 16) and keys.shape == (2, 4, 10) and state.shape == (2, 1, parts, 12)
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert float(enc[1, 2:].abs().max()) == 0.0                      # padding carries nothing
    logits = model(src, torch.tensor([[1, 9, 9], [1, 9, 0]]))
    assert logits.shape == (2, 3, 60)
    _, _, attn = model.decoder.step(torch.tensor([1, 1]), state, enc, keys, mask)
    assert torch.allclose(attn.sum(-1), torch.ones(2)) and float(attn[1, 2:].max()) == 0.0


def test_padding_does_not_change_a_sentence():
    cfg = Seq2SeqConfig(src_vocab=50, tgt_vocab=60, emb=16, enc_hidden=8, dec_hidden=12, attn=10)
    model = Seq2Seq(cfg).eval()
    alone = model.encoder(torch.tensor([[8, 9, 2]]))
    padded = model.encoder(torch.tensor([[8, 9, 2, 0, 0], [5, 6, 7, 8, 2]]))
    assert torch.allclose(alone[0][0], padded[0][0, :3], atol=1e-6)
    assert torch.allclose(alone[3][0], padded[3][0], atol=1e-6)


def test_model_json_describes_the_graphs(model_dir, translator):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["training"]["attribution"].startswith("Sentence pairs from the Tatoeba project")
    assert not meta.get("placeholders", False)  # the fixture is trained without --placeholders
    assert meta["parity"]["max_abs_logprob_diff"] < 1e-4 and meta["parity"]["greedy_identical"]
    assert meta["quality"]["greedy"]["chrf"] > 0 and "beam3" in meta["quality"]
    L, K, H = meta["architecture"]["decoder_state_shape"]
    enc, keys, mask, state = translator.runtime.encode(np.array([[5, 6, 2]], dtype=np.int64))
    assert state.shape == (1, L, K, H) and enc.shape == (1, 3, 2 * meta["architecture"]["enc_hidden"])
    logp, new_state, attn = translator.runtime.step(np.array([1]), state, enc, keys, mask)
    assert logp.shape == (1, meta["vocab"]["target_size"]) and new_state.shape == state.shape
    assert np.isclose(np.exp(logp).sum(), 1.0, atol=1e-4) and attn.shape == (1, 3)


def test_parity_torch_vs_onnx(run_dir, model_dir):
    model, _ = onnx_export.load_checkpoint(run_dir)
    report = onnx_export.check_parity(model, model_dir)
    assert report["max_abs_logprob_diff"] < 1e-4 and report["greedy_identical"] and report["batch_equals_single"]
    with torch.no_grad():                                 # a model that differs from its graphs is caught
        model.decoder.pre_out.bias.add_(0.5)
    with pytest.raises(RuntimeError, match="parity check failed"):
        onnx_export.check_parity(model, model_dir)


def test_export_refuses_to_overwrite_without_force(run_dir, model_dir, tmp_path):
    args = argparse.Namespace(run=str(run_dir), out=str(model_dir), force=False, version=None, no_eval=True,
                              eval_beams=[1])
    before = (model_dir / "model.json").read_bytes()
    with pytest.raises(SystemExit, match="--force"):
        onnx_export.run(args)
    assert (model_dir / "model.json").read_bytes() == before
    out = tmp_path / "copy"
    onnx_export.run(argparse.Namespace(**{**vars(args), "out": str(out)}))
    stamp = (out / "model.json").read_text()
    onnx_export.run(argparse.Namespace(**{**vars(args), "out": str(out), "force": True, "version": "2"}))
    assert json.loads((out / "model.json").read_text())["version"] == "2" != json.loads(stamp)["version"]


def test_training_resumes_from_its_checkpoint(tmp_path, run_dir):
    data = tmp_path / "c.tsv"
    data.write_text((run_dir / "train.tsv").read_text())
    out = tmp_path / "run"
    train.run(train_args(data, out, epochs=1))
    assert len(json.loads((out / "history.json").read_text())) == 1
    train.run(train_args(data, out, epochs=2, resume=True))
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and (out / "loss_curve.png").stat().st_size > 1000


def test_int8_export_quantizes_per_row_so_batching_never_changes_a_result(run_dir, tmp_path):
    import onnx

    from service.translator import Translator

    out = tmp_path / "int8"
    onnx_export.run(argparse.Namespace(run=str(run_dir), out=str(out), force=False, version="t", no_eval=True,
                                       eval_beams=[1], quantize="int8"))
    meta = json.loads((out / "model.json").read_text())
    assert meta["quantization"]["batch_equals_single"] is True
    for name in ("encoder.onnx", "decoder_step.onnx"):
        ops = {n.op_type for n in onnx.load(str(out / name)).graph.node}
        assert "DynamicQuantizeLinear" not in ops and "DynamicQuantizeLSTM" not in ops
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(out / "decoder_step.onnx")).graph.node}
    tr = Translator(out, provider="cpu", intra_threads=1)
    float_tr = Translator(run_dir.parent / "model-lstm", provider="cpu", intra_threads=1)
    texts = [f"{s} {v} {o}." for s in ("I", "We", "They") for v in ("see", "like") for o in ("a cat", "the book")]
    assert [r.text for r in tr.translate_batch(texts)] == [tr.translate_batch([t])[0].text for t in texts]
    same = sum(a.text == b.text for a, b in zip(tr.translate_batch(texts), float_tr.translate_batch(texts)))
    assert same >= len(texts) * 0.8                     # int8 keeps (nearly all) the float model's answers


def test_a_run_stopped_mid_epoch_resumes_there_and_from_a_snapshot(tmp_path, run_dir, monkeypatch):
    """Kill a run part-way through an epoch (after its in-epoch checkpoint), resume it; then continue the
    committed kind of checkpoint (a float16 snapshot without optimizer state) in a fresh run directory."""
    import argparse

    from export import snapshot

    data = tmp_path / "c.tsv"
    data.write_text((run_dir / "train.tsv").read_text())
    out = tmp_path / "run"
    calls, real = [0], train.collate

    def dying_collate(*a):
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt              # the session stops here
        return real(*a)

    monkeypatch.setattr(train, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train.run(train_args(data, out, epochs=1, save_minutes=0))
    monkeypatch.setattr(train, "collate", real)
    ck = torch.load(out / "last.pt", weights_only=False)
    assert ck["epoch"] == 0 and ck["partial"]["pos"] == 5
    train.run(train_args(data, out, epochs=1, resume=True))
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]

    snap = tmp_path / "snap.pt"
    snapshot.run(argparse.Namespace(run=str(out), out=str(snap)))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("train.tsv", "val.tsv"):
        (fresh / name).write_text((out / name).read_text())
    train.run(train_args(data, fresh, epochs=2, resume=True, resume_from=str(snap)))
    history = json.loads((fresh / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert (fresh / "spm_en.model").read_bytes() == (out / "spm_en.model").read_bytes()


def test_quality_metrics_count_numbers_kept_and_invented():
    from export.evaluate import invents_numbers, numbers_kept, repeats

    assert numbers_kept("In 2016, 12 of 12 firms.", "W 2016 r. 12 z 1 firm.") == (2, 3)   # a multiset
    assert not invents_numbers("In 2016, 12 of 12 firms.", "W 2016 r. 12 z 12 firm.")
    assert invents_numbers("The pilot was named.", "Pilot 0 został nazwany.")          # a digit from nowhere
    assert invents_numbers("It costs 5 euro.", "Kosztuje 5 euro, 5 euro.")              # more often than the source
    assert repeats("a b c d a b c d a b c d") and not repeats("a b c d a b c d")
