#!/usr/bin/env python3
"""What the embedding model's parts cost in memory, measured apart with the same ONNX Runtime
and tokenizers versions zhiku runs: tokenizers one after another, then ORT sessions one after
another, then one ingest-sized batch. docs/benchmarks.md ("Memory") quotes its output.

usage: scripts/memory_breakdown.py [MODEL_DIR]   (default models/multilingual-e5-small;
needs the onnxruntime, tokenizers and numpy packages)
"""
import sys

import numpy as np
import onnxruntime as ort
import tokenizers


def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/multilingual-e5-small"
    base = rss_mib()
    print(f"interpreter and libraries: {base} MiB")
    kept = []
    for i in range(3):
        before = rss_mib()
        kept.append(tokenizers.Tokenizer.from_file(f"{model_dir}/tokenizer.json"))
        print(f"tokenizer {i + 1}: +{rss_mib() - before} MiB")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    model = open(f"{model_dir}/model.onnx", "rb").read()
    sessions = []
    for i in range(2):
        before = rss_mib()
        sessions.append(ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]))
        print(f"ORT session {i + 1}: +{rss_mib() - before} MiB")
    del model
    ids = np.ones((32, 256), dtype=np.int64)
    before = rss_mib()
    sessions[0].run(None, {"input_ids": ids, "attention_mask": ids, "token_type_ids": np.zeros_like(ids)})
    print(f"one 32 x 256-token batch (arena): +{rss_mib() - before} MiB")
    print(f"total: {rss_mib()} MiB")


if __name__ == "__main__":
    main()
