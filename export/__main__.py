"""`python -m export {train,onnx,evaluate,plot-attention}`: the training and export pipeline."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    from . import corpus, evaluate, onnx_export, plot_attention, train

    p = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    commands = {"corpus": (corpus, "build the training corpus: Tatoeba + extra/, filtered, dev sets kept out"),
                "train": (train, "train tokenizers and the model on a TSV corpus"),
                "onnx": (onnx_export, "export a checkpoint to an ONNX model directory (parity-checked)"),
                "evaluate": (evaluate, "BLEU/chrF of a model directory through the serving engine"),
                "plot-attention": (plot_attention, "attention heatmap PNGs for chosen sentences")}
    for name, (mod, help_) in commands.items():
        mod.add_args(sub.add_parser(name, help=help_))
    args = p.parse_args(argv)
    commands[args.cmd][0].run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
