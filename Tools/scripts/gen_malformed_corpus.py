#!/usr/bin/env python3
"""Writes the malformed-file corpus under Tests/Fixtures/malformed/ and its manifest.

Every file is built byte by byte with `struct` (no reader or writer of ours, nor any third-party
format library, is involved), so the corpus is independent of the code it tests. The output is
deterministic: running the script twice gives identical bytes.

    python3 Tools/scripts/gen_malformed_corpus.py

Layout:
  Tests/Fixtures/malformed/<format>/NAME.<ext>   one hostile or malformed input (a file, or a
                                                 directory for PEFT adapters, sharded safetensors
                                                 checkpoints and Hugging Face tokenizers)
  Tests/Fixtures/malformed/manifest.json         per entry: path, format, the rule or CVE class it
                                                 covers (with the Formats/*.md section), the reader,
                                                 the expected error type and kind, a substring the
                                                 error's description must contain, and `huge` when
                                                 the file declares sizes far beyond its own (its
                                                 refusal is also checked for peak memory)

`Tests/MalformedCorpusTests` opens every entry with the real reader and expects that error.
The 50 corrupt `.sprompt` files of `CorruptionTests` (built in memory, one or more per rule of
Formats/sprompt.md section 6) are not repeated here; the `.sprompt` files below add hostile sizes.
"""
import hashlib
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "malformed")

ENTRIES = []


def record(path, fmt, reader, rule, error, kind, message=None, huge=False):
    entry = {"path": path, "format": fmt, "reader": reader, "rule": rule, "error": error, "kind": kind}
    if message is not None:
        entry["message"] = message
    if huge:
        entry["huge"] = True
    ENTRIES.append(entry)


def write(rel, data):
    full = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    assert len(data) < 64 * 1024, rel


def u8(v): return struct.pack("<B", v)
def u32(v): return struct.pack("<I", v)
def i64(v): return struct.pack("<q", v)
def u64(v): return struct.pack("<Q", v)


# ---------------------------------------------------------------------------------------------
# GGUF (Formats/gguf.md)

T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, \
    T_UINT64, T_INT64, T_FLOAT64 = range(13)
G_F32, G_F16, G_Q4_0, G_Q8_0, G_Q4_K, G_F64, G_BF16 = 0, 1, 2, 8, 12, 28, 30


def gstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u64(len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + u32(vtype) + payload


def kv_str(key, value):
    return kv(key, T_STRING, gstr(value))


def kv_u32(key, value):
    return kv(key, T_UINT32, u32(value))


def tinfo(name, dims, gtype, offset):
    out = gstr(name) + u32(len(dims))
    for d in dims:
        out += i64(d) if d < 2 ** 63 else u64(d)
    return out + u32(gtype) + u64(offset)


def gguf(kvs=(), tensors=(), data=b"", version=3, n_kv=None, n_tensors=None, align=32, pad=True):
    head = b"GGUF" + u32(version)
    head += u64(len(tensors) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    if pad and (tensors or data):
        body += b"\0" * ((-len(body)) % align)
    return body + data


def g(name, data, rule, kind, message=None, huge=False):
    rel = "gguf/" + name + ".gguf"
    write(rel, data)
    record(rel, "gguf", "GGUFFile", rule, "GGUFError", kind, message, huge)


def gen_gguf():
    ok_kv = kv_str("general.architecture", "llama")
    one_f32 = [tinfo("t", [4], G_F32, 0)]
    data16 = b"\0" * 16

    # Header: magic, version, counts.
    g("empty", b"", "gguf.md Layout: magic (truncated inside the magic)", "truncated", "reading the header")
    g("magic_truncated", b"GG", "gguf.md Layout: magic (truncated inside the magic)", "truncated", "reading the header")
    g("magic_wrong", b"GGML" + u32(3) + u64(0) + u64(0), "gguf.md Layout: magic", "badMagic", "not a GGUF file")
    g("version_truncated", b"GGUF\x03\x00", "gguf.md Layout: version (truncated)", "truncated", "reading the header")
    g("version_1", gguf(version=1), "gguf.md Layout: version 1 refused", "unsupportedVersion", "version 1")
    g("version_4", gguf(version=4), "gguf.md Layout: version not 2 or 3", "unsupportedVersion", "unsupported GGUF version 4")
    g("version_0", gguf(version=0), "gguf.md Layout: version not 2 or 3", "unsupportedVersion")
    g("version_big_endian", gguf(version=3 << 24), "gguf.md Layout: byte-swapped version", "bigEndian", "big-endian")
    g("counts_truncated", b"GGUF" + u32(3) + u64(0) + b"\0\0\0", "gguf.md Layout: counts (truncated)",
      "truncated", "reading the header")
    g("n_tensors_2p63", gguf(n_tensors=2 ** 63), "CVE class: n_tensors overflow (gguf.md Limits: maxTensorCount)",
      "tooManyTensors", huge=True)
    g("n_tensors_wraps_x24", gguf(n_tensors=(2 ** 64 // 24) + 1),
      "CVE class: n_tensors × tensor-info size overflows 64 bits (gguf.md Limits)", "tooManyTensors")
    g("n_kv_2p63", gguf(n_kv=2 ** 63), "CVE class: n_kv overflow (gguf.md Limits: maxKeyCount)", "tooManyKeys", huge=True)
    g("n_kv_max_u64", gguf(n_kv=2 ** 64 - 1), "CVE class: n_kv overflow (gguf.md Limits: maxKeyCount)", "tooManyKeys")
    g("n_kv_wraps_x8", gguf(n_kv=2 ** 61 + 1), "CVE class: n_kv × entry size overflows 64 bits (gguf.md Limits)",
      "tooManyKeys")
    g("n_kv_at_cap_past_eof", gguf(n_kv=2 ** 20), "gguf.md Conventions: a count that cannot fit in what remains",
      "truncated", "reading the metadata key", huge=True)
    g("n_tensors_at_cap_past_eof", gguf(n_tensors=2 ** 20), "gguf.md Conventions: a count that cannot fit in what remains",
      "truncated", "reading the tensor info", huge=True)

    # Metadata keys.
    g("key_length_truncated", gguf(n_kv=1) + b"\x05\0\0", "gguf.md Metadata entry: key (truncated length)",
      "truncated", "reading the metadata key")
    g("key_bytes_truncated", gguf(n_kv=1) + u64(10) + b"gene", "gguf.md Metadata entry: key (truncated bytes)",
      "truncated", "reading the metadata key")
    g("key_length_max_u64", gguf(n_kv=1) + u64(2 ** 64 - 1) + b"k",
      "CVE class: string length 2^64-1 (gguf.md Metadata entry: key 1..65535 bytes)", "stringTooLong")
    g("key_length_65536", gguf(n_kv=1) + u64(65536) + b"k" * 16, "gguf.md Metadata entry: key 1..65535 bytes",
      "stringTooLong", "limit of 65535")
    g("key_empty", gguf([kv(b"", T_UINT8, b"\0")]), "gguf.md Metadata entry: key 1..65535 bytes", "emptyKey")
    g("key_invalid_utf8", gguf([kv(b"gen\xc0\xafral", T_UINT8, b"\0")]), "gguf.md Metadata entry: key valid UTF-8",
      "invalidUTF8")
    g("key_embedded_nul", gguf([kv(b"general\0x", T_UINT8, b"\0")]), "gguf.md Metadata entry: key without NUL",
      "embeddedNUL")
    g("key_duplicate", gguf([ok_kv, ok_kv]), "gguf.md Metadata entry: key unique", "duplicateKey",
      "duplicate metadata key")

    # Metadata values.
    g("value_type_truncated", gguf(n_kv=1) + gstr("k") + b"\x04\0", "gguf.md Metadata entry: value type (truncated)",
      "truncated", "reading the metadata value")
    g("value_truncated", gguf(n_kv=1) + gstr("k") + u32(T_UINT64) + b"\1\2\3",
      "gguf.md Value types: value (truncated)", "truncated", "reading the metadata value")
    g("value_type_13", gguf([kv("k", 13, b"\0" * 8)]), "gguf.md Value types: unknown type id", "unknownValueType",
      "unknown metadata value type 13")
    g("value_type_max_u32", gguf([kv("k", 0xFFFFFFFF, b"\0" * 8)]), "gguf.md Value types: unknown type id",
      "unknownValueType")
    g("bool_2", gguf([kv("k", T_BOOL, b"\2")]), "gguf.md Value types: BOOL is 0 or 1", "invalidBool")
    g("string_length_max_u64", gguf([kv("k", T_STRING, u64(2 ** 64 - 1) + b"abc")]),
      "CVE class: string length 2^64-1 (gguf.md Limits: maxStringLength)", "stringTooLong", huge=True)
    g("string_length_2p30_past_eof", gguf([kv("k", T_STRING, u64(2 ** 30) + b"abc")]),
      "CVE class: string length past EOF (gguf.md Conventions)", "truncated", "reading the metadata value", huge=True)
    g("string_length_past_eof", gguf([kv("k", T_STRING, u64(100) + b"abc")]),
      "CVE class: string length past EOF (gguf.md Conventions)", "truncated", "reading the metadata value")
    g("array_count_max_u64", gguf([kv("k", T_ARRAY, u32(T_UINT8) + u64(2 ** 64 - 1))]),
      "CVE class: array length overflow (gguf.md Limits: maxArrayCount)", "arrayTooLong", huge=True)
    g("array_count_2p40", gguf([kv("k", T_ARRAY, u32(T_FLOAT32) + u64(2 ** 40) + b"\0" * 16)]),
      "CVE class: 2^40-element array (gguf.md Limits: maxArrayCount)", "arrayTooLong", huge=True)
    g("array_count_x8_wraps", gguf([kv("k", T_ARRAY, u32(T_UINT64) + u64(2 ** 61 + 1) + b"\0" * 16)]),
      "CVE class: array count × element size overflows 64 bits", "arrayTooLong")
    g("array_u64_2p30_past_eof", gguf([kv("k", T_ARRAY, u32(T_UINT64) + u64(2 ** 30) + b"\0" * 16)]),
      "CVE class: array count past EOF (8 GiB of elements declared)", "truncated", "reading the metadata value", huge=True)
    g("array_strings_2p30_past_eof", gguf([kv("k", T_ARRAY, u32(T_STRING) + u64(2 ** 30) + gstr("a"))]),
      "CVE class: string-array count past EOF (offsets table not reserved)", "truncated", "reading the metadata value",
      huge=True)
    g("array_string_element_max_u64", gguf([kv("k", T_ARRAY, u32(T_STRING) + u64(2) + gstr("a") + u64(2 ** 64 - 1))]),
      "CVE class: string length 2^64-1 inside a string array", "stringTooLong")
    g("array_string_element_past_eof", gguf([kv("k", T_ARRAY, u32(T_STRING) + u64(2) + gstr("a") + u64(64) + b"xy")]),
      "CVE class: string length past EOF inside a string array", "truncated", "reading the metadata value")
    g("array_nested", gguf([kv("k", T_ARRAY, u32(T_ARRAY) + u64(1) + u32(T_UINT8) + u64(1) + b"\0")]),
      "CVE class: nested arrays (gguf.md Value types: ARRAY element type not ARRAY)", "nestedArray")
    deep = b""
    for _ in range(1000):
        deep += u32(T_ARRAY) + u64(1)
    g("array_nested_deep", gguf([kv("k", T_ARRAY, deep + u32(T_UINT8) + u64(1) + b"\0")]),
      "CVE class: deeply nested arrays (1000 levels)", "nestedArray")
    g("array_element_type_unknown", gguf([kv("k", T_ARRAY, u32(99) + u64(1) + b"\0")]),
      "gguf.md Value types: ARRAY element type valid", "unknownValueType")
    g("array_bool_invalid", gguf([kv("k", T_ARRAY, u32(T_BOOL) + u64(3) + b"\0\1\7")]),
      "gguf.md Value types: every element obeys its type's rule", "invalidBool")
    g("array_header_truncated", gguf(n_kv=1) + gstr("k") + u32(T_ARRAY) + u32(T_UINT8) + b"\1\0",
      "gguf.md Value types: ARRAY count (truncated)", "truncated", "reading the metadata value")

    # Alignment.
    g("alignment_zero", gguf([kv_u32("general.alignment", 0)]), "gguf.md Alignment: non-zero power of two",
      "alignmentNotPowerOfTwo")
    g("alignment_48", gguf([kv_u32("general.alignment", 48)]), "gguf.md Alignment: non-zero power of two",
      "alignmentNotPowerOfTwo", "alignment 48")
    g("alignment_max_u32", gguf([kv_u32("general.alignment", 0xFFFFFFFF)]), "gguf.md Alignment: non-zero power of two",
      "alignmentNotPowerOfTwo")
    g("alignment_uint64", gguf([kv("general.alignment", T_UINT64, u64(32))]), "gguf.md Alignment: MUST be UINT32",
      "badAlignmentType")
    g("alignment_string", gguf([kv_str("general.alignment", "32")]), "gguf.md Alignment: MUST be UINT32",
      "badAlignmentType")
    g("alignment_after_tensors_misaligned",
      gguf([ok_kv, kv_u32("general.alignment", 64)], [tinfo("t", [8], G_F32, 32)], b"\0" * 96, align=64),
      "gguf.md Tensor info: offset multiple of general.alignment (64)", "misalignedOffset", "alignment 64")

    # Tensor infos.
    g("tensor_name_truncated", gguf([ok_kv], n_tensors=1) + u64(8) + b"blk", "gguf.md Tensor info: name (truncated)",
      "truncated", "reading the tensor info")
    g("tensor_name_64", gguf([ok_kv], [tinfo("x" * 64, [4], G_F32, 0)], data16),
      "gguf.md Tensor info: name at most 63 bytes", "stringTooLong", "limit of 63")
    g("tensor_name_length_max_u64", gguf(n_tensors=1) + u64(2 ** 64 - 1) + b"t",
      "CVE class: string length 2^64-1 (tensor name)", "stringTooLong")
    g("tensor_name_invalid_utf8", gguf([], [tinfo(b"t\xff", [4], G_F32, 0)], data16),
      "gguf.md Tensor info: name valid UTF-8", "invalidUTF8")
    g("tensor_name_embedded_nul", gguf([], [tinfo(b"a\0b", [4], G_F32, 0)], data16),
      "gguf.md Tensor info: name without NUL", "embeddedNUL")
    g("tensor_name_duplicate", gguf([], [tinfo("t", [4], G_F32, 0), tinfo("t", [4], G_F32, 32)], b"\0" * 48),
      "gguf.md Tensor info: name unique", "duplicateTensorName")
    g("n_dims_5", gguf([], [tinfo("t", [1, 1, 1, 1, 4], G_F32, 0)], data16), "gguf.md Tensor info: n_dims ≤ 4",
      "tooManyDimensions", "5 dimensions")
    g("n_dims_max_u32", gguf(n_tensors=1) + gstr("t") + u32(0xFFFFFFFF) + b"\0" * 32,
      "gguf.md Tensor info: n_dims ≤ 4 (2^32-1 declared)", "tooManyDimensions")
    g("dims_truncated", gguf(n_tensors=1) + gstr("t") + u32(2) + i64(4) + b"\0\0",
      "gguf.md Tensor info: dimensions (truncated)", "truncated", "reading the tensor info")
    g("dim_negative_one", gguf([], [tinfo("t", [4, 2 ** 64 - 1], G_F32, 0)], data16),
      "CVE class: negative-as-unsigned dimension (gguf.md Tensor info: each ≥ 0)", "negativeDimension")
    g("dim_int64_min", gguf([], [tinfo("t", [2 ** 63], G_F32, 0)], data16),
      "CVE class: negative-as-unsigned dimension (gguf.md Tensor info: each ≥ 0)", "negativeDimension")
    g("dim_zero_offset_out_of_bounds", gguf([], [tinfo("t", [0, 2 ** 62], G_F32, 2 ** 40)], data16),
      "CVE class: zero dimension (an empty tensor) with its offset past the file (gguf.md Data placement)",
      "offsetOutOfBounds")
    g("dims_product_overflow", gguf([], [tinfo("t", [2 ** 32, 2 ** 32], G_F32, 0)], data16),
      "CVE class: ne product overflows int64 (gguf.md Tensor info: dimensions)", "elementCountOverflow")
    g("dims_product_overflow_4d", gguf([], [tinfo("t", [2 ** 16, 2 ** 16, 2 ** 16, 2 ** 15], G_F32, 0)], data16),
      "CVE class: ne product overflows int64 by one bit (2^63)", "elementCountOverflow")
    g("byte_size_overflow_f32", gguf([], [tinfo("t", [2 ** 62], G_F32, 0)], data16),
      "CVE class: elements × type size overflows (gguf.md Tensor info: byte size fits an Int)", "byteSizeOverflow")
    g("byte_size_overflow_f64", gguf([], [tinfo("t", [2 ** 30, 2 ** 31], G_F64, 0)], data16),
      "CVE class: elements × type size overflows (F64)", "byteSizeOverflow")
    g("type_truncated", gguf(n_tensors=1) + gstr("t") + u32(1) + i64(4) + b"\0",
      "gguf.md Tensor info: type (truncated)", "truncated", "reading the tensor info")
    g("type_retired_4", gguf([], [tinfo("t", [32], 4, 0)], b"\0" * 32), "gguf.md Tensor info: retired ggml type 4",
      "unknownTensorType")
    g("type_unknown_9999", gguf([], [tinfo("t", [32], 9999, 0)], b"\0" * 32), "gguf.md Tensor info: unknown ggml type",
      "unknownTensorType", "9999")
    g("q4_0_row_33", gguf([], [tinfo("t", [33, 2], G_Q4_0, 0)], b"\0" * 64),
      "gguf.md Tensor info: ne0 multiple of the block size (Q4_0, 32)", "rowNotMultipleOfBlock", "block size 32")
    g("q4_k_row_128", gguf([], [tinfo("t", [128], G_Q4_K, 0)], b"\0" * 160),
      "gguf.md Tensor info: ne0 multiple of the block size (Q4_K, 256)", "rowNotMultipleOfBlock", "block size 256")
    g("q8_0_scalar", gguf([], [tinfo("t", [], G_Q8_0, 0)], b"\0" * 64),
      "gguf.md Tensor info: a scalar's ne0 is 1, not a multiple of 32", "rowNotMultipleOfBlock")
    g("offset_truncated", gguf(n_tensors=1) + gstr("t") + u32(1) + i64(4) + u32(G_F32) + b"\0\0\0\0",
      "gguf.md Tensor info: offset (truncated)", "truncated", "reading the tensor info")
    g("offset_misaligned", gguf([], [tinfo("t", [4], G_F32, 16)], b"\0" * 64),
      "gguf.md Tensor info: offset multiple of the alignment (32)", "misalignedOffset", "alignment 32")

    # Data placement.
    g("padding_truncated", gguf([], one_f32, pad=False) + b"\0",
      "gguf.md Layout: padding before the data section (truncated)", "truncated", "reading the tensor data")
    g("data_truncated", gguf([], [tinfo("t", [64], G_F32, 0)], b"\0" * 100),
      "gguf.md Data placement: tensor bytes within the file (data truncated)", "offsetOutOfBounds")
    g("tensor_1gib_declared", gguf([], [tinfo("t", [2 ** 28], G_F32, 0)], b"\0" * 32),
      "gguf.md Data placement: a 1 GiB tensor declared in a tiny file", "offsetOutOfBounds", huge=True)
    g("offset_past_eof", gguf([], [tinfo("t", [4], G_F32, 2 ** 40)], data16),
      "CVE class: tensor offset out of bounds", "offsetOutOfBounds")
    g("offset_wraps", gguf([], [tinfo("t", [8], G_F32, 2 ** 64 - 32)], b"\0" * 32),
      "CVE class: offset + size wraps around 2^64", "offsetOutOfBounds")
    g("tensors_overlap_same_offset", gguf([], [tinfo("a", [8], G_F32, 0), tinfo("b", [8], G_F32, 0)], b"\0" * 32),
      "CVE class: overlapping tensors (gguf.md Data placement)", "overlappingTensors", "tensor 'a'")
    g("tensors_overlap_partial",
      gguf([], [tinfo("a", [8], G_F32, 64), tinfo("b", [16], G_F32, 32), tinfo("c", [8], G_F32, 0)], b"\0" * 96),
      "CVE class: overlapping tensors, out of file order (gguf.md Data placement)", "overlappingTensors")


# ---------------------------------------------------------------------------------------------
# GGUF soft-prompt adapters (Formats/gguf-adapter.md), read through PromptConversion.read

P = "adapter.soft_prompt."
SHA = "ab" * 32


def adapter(extra=(), tensors=None, gtype=G_F32, shape=(8, 2), base=True, data=None):
    kvs = []
    if base:
        kvs += [kv_str("general.type", "adapter"), kv_str("adapter.type", "soft_prompt")]
    kvs += list(extra)
    if tensors is None:
        n = 1
        for d in shape:
            n *= d
        size = {G_F32: 4, G_F16: 2, G_BF16: 2, G_Q8_0: 34 / 32}[gtype]
        tensors = [tinfo("prompt_embeddings", list(shape), gtype, 0)]
        data = b"\0" * int(n * size) if data is None else data
    return gguf(kvs, tensors, data or b"")


def fingerprint_kvs(width=8, sketch=True):
    out = [kv_str("general.architecture", "llama"), kv_u32(P + "model.embedding_length", width),
           kv_u32(P + "model.layer_count", 2), kv_u32(P + "model.vocab_size", 100)]
    if sketch:
        out += [kv_u32(P + "model.sketch_version", 1),
                kv(P + "model.sketch", T_ARRAY, u32(T_FLOAT64) + u64(2) + struct.pack("<2d", 0.5, -0.25)),
                kv(P + "model.sketch_norms", T_ARRAY, u32(T_FLOAT64) + u64(2) + struct.pack("<2d", 1.0, 2.0)),
                kv_str(P + "model.rows_sha256", SHA)]
    return out


def ga(name, data, rule, message):
    rel = "gguf-adapter/" + name + ".gguf"
    write(rel, data)
    record(rel, "gguf-adapter", "PromptConversion.read", rule, "PromptConversionError", None, message)


def gen_gguf_adapter():
    ga("not_an_adapter", adapter(base=False, extra=[kv_str("general.type", "model")]),
       "gguf-adapter.md 1: general.type = \"adapter\"", "not a soft-prompt adapter")
    ga("adapter_type_lora", gguf([kv_str("general.type", "adapter"), kv_str("adapter.type", "lora")],
                                 [tinfo("prompt_embeddings", [8, 2], G_F32, 0)], b"\0" * 64),
       "gguf-adapter.md 1: adapter.type = \"soft_prompt\"", "not a soft-prompt adapter")
    ga("general_type_not_string", adapter(base=False, extra=[kv_u32("general.type", 1), kv_str("adapter.type", "soft_prompt")]),
       "gguf-adapter.md 1: general.type is a STRING", "not a soft-prompt adapter")
    ga("version_2", adapter([kv_u32(P + "version", 2)]), "gguf-adapter.md 1: version MUST be 1", "version 2")
    ga("version_as_string", adapter([kv_str(P + "version", "2")]),
       "gguf-adapter.md 1: version is a UINT32 (a STRING \"2\" is not version 1)", "version")
    ga("placement_suffix", adapter([kv_str(P + "placement", "suffix")]), "gguf-adapter.md 1: placement \"prefix\"",
       "placement 'suffix'")
    ga("placement_not_string", adapter([kv_u32(P + "placement", 0)]),
       "gguf-adapter.md 1: placement is a STRING", "placement")
    ga("template_without_input", adapter([kv_str(P + "template", "Name: {inp}")]),
       "gguf-adapter.md 1: template MUST contain {input}", "lacks {input}")
    ga("provenance_not_json", adapter([kv_str(P + "provenance", "{\"a\":")]),
       "gguf-adapter.md 1: provenance is a JSON object", "provenance")
    ga("provenance_array", adapter([kv_str(P + "provenance", "[1,2]")]),
       "gguf-adapter.md 1: provenance is a JSON object", "not a JSON object")
    ga("metrics_duplicate_key", adapter([kv_str(P + "metrics", "{\"acc\":1,\"acc\":2}")]),
       "gguf-adapter.md 1: metrics is a JSON object (sprompt.md 2: no repeated key)", "metrics")
    ga("no_tensor", gguf([kv_str("general.type", "adapter"), kv_str("adapter.type", "soft_prompt")]),
       "gguf-adapter.md 2: exactly one tensor", "expected exactly one tensor")
    ga("two_tensors", adapter(tensors=[tinfo("prompt_embeddings", [8, 2], G_F32, 0), tinfo("x", [8], G_F32, 64)],
                              data=b"\0" * 96), "gguf-adapter.md 2: exactly one tensor", "expected exactly one tensor")
    ga("tensor_misnamed", adapter(tensors=[tinfo("embeddings", [8, 2], G_F32, 0)], data=b"\0" * 64),
       "gguf-adapter.md 2: the tensor is named prompt_embeddings", "prompt_embeddings")
    ga("tensor_q8_0", adapter(gtype=G_Q8_0, shape=(32, 2)), "gguf-adapter.md 2: type F32, F16 or BF16",
       "is not F32, F16 or BF16")
    ga("tensor_1d", adapter(shape=(8,)), "gguf-adapter.md 2: shape [width, tokens]", "is not [width, tokens]")
    ga("tensor_3d", adapter(shape=(8, 2, 1)), "gguf-adapter.md 2: shape [width, tokens]", "is not [width, tokens]")
    ga("tensor_zero_tokens", adapter(shape=(8, 0), data=b""), "gguf-adapter.md 2 / sprompt.md 2.2: tokens ≥ 1",
       "is not a soft prompt")
    ga("width_not_embedding_length", adapter(fingerprint_kvs(width=16)),
       "gguf-adapter.md 2: width MUST equal model.embedding_length", "embedding_length")
    ga("fingerprint_incomplete", adapter([kv_str("general.architecture", "llama")]),
       "gguf-adapter.md 1: general.architecture means the fingerprint follows", "is missing")
    ga("sketch_without_arrays", adapter(fingerprint_kvs(sketch=False) + [kv_u32(P + "model.sketch_version", 1)]),
       "gguf-adapter.md 1: sketch_version requires sketch, sketch_norms, rows_sha256", "sketch_version is set")
    ga("tokenizer_hash_uppercase", adapter(fingerprint_kvs() + [kv_str(P + "model.tokenizer_sha256", "AB" * 32)]),
       "gguf-adapter.md 1 / sprompt.md 2.3: hash of 64 lowercase hex digits", "tokenizer_sha256")
    ga("sketch_norms_count_differs",
       adapter(fingerprint_kvs(sketch=False) + [
           kv_u32(P + "model.sketch_version", 1),
           kv(P + "model.sketch", T_ARRAY, u32(T_FLOAT64) + u64(2) + struct.pack("<2d", 0.5, -0.25)),
           kv(P + "model.sketch_norms", T_ARRAY, u32(T_FLOAT64) + u64(1) + struct.pack("<d", 1.0)),
           kv_str(P + "model.rows_sha256", SHA)]),
       "gguf-adapter.md 1 / sprompt.md 2.3: sketch and norms of equal length", "norms")
    ga("gguf_truncated", adapter()[:-20], "gguf.md (the container): tensor data truncated", "outside the data section")


# ---------------------------------------------------------------------------------------------
# safetensors (Formats/safetensors.md)

def st(header, data=b"", n=None):
    if isinstance(header, (dict, list)):
        header = json.dumps(header, separators=(",", ":")).encode()
    elif isinstance(header, str):
        header = header.encode()
    return u64(len(header) if n is None else n) + header + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def s(name, data, rule, kind, message=None, huge=False):
    rel = "safetensors/" + name + ".safetensors"
    write(rel, data)
    record(rel, "safetensors", "SafetensorsFile", rule, "SafetensorsError", kind, message, huge)


def gen_safetensors():
    f32x2 = t("F32", [2], 0, 8)
    s("empty", b"", "safetensors.md 1.1: at least 8 bytes", "fileTooSmall")
    s("length_truncated", b"\x10\0\0\0", "safetensors.md 1.1: at least 8 bytes", "fileTooSmall")
    s("header_length_max_u64", u64(2 ** 64 - 1) + b"{}", "CVE class: header length 2^64-1 (safetensors.md 1.2)",
      "headerTooLarge", huge=True)
    s("header_length_over_cap", u64(100_000_001) + b"{}", "safetensors.md 1.2: N ≤ 20,000,000", "headerTooLarge")
    s("header_length_past_eof", u64(90_000_000) + b"{}", "safetensors.md 1.2: 8 + N ≤ file size", "headerExceedsFile",
      huge=True)
    s("header_length_zero", u64(0), "safetensors.md 1.3: first byte `{` (N = 0)", "headerNotObject")
    s("header_leading_space", st(" {}"), "safetensors.md 1.3: first byte `{`", "headerNotObject")
    s("header_array", st("[1,2]"), "safetensors.md 1.3: the header is an object", "headerNotObject")
    s("header_not_json", st("{\"a\":nope}"), "safetensors.md 1.5: RFC 8259 JSON", "headerNotJSON")
    s("header_nul_padding", st(b"{}\0\0\0\0\0\0"), "safetensors.md 1.3: only whitespace after `}`", "headerNotJSON")
    s("header_invalid_utf8", st(b"{\"__metadata__\":{\"a\":\"\xc0\xaf\"}}"), "safetensors.md 1.4: well-formed UTF-8",
      "headerNotUTF8")
    s("header_surrogate_utf8", st(b"{\"__metadata__\":{\"a\":\"\xed\xa0\x80\"}}"),
      "safetensors.md 1.4: no encoded surrogates", "headerNotUTF8")
    s("header_nesting_20000", st("{\"a\":" + "[" * 20000 + "]" * 20000 + "}"),
      "safetensors.md 1.5: nesting at most 8 levels (20,000 deep)", "headerNotJSON")
    s("header_number_1e400", st("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e400],\"data_offsets\":[0,4]}}", b"\0" * 4),
      "safetensors.md 1.5: number overflowing a double", "headerNotJSON")
    s("header_lone_surrogate_escape", st("{\"__metadata__\":{\"a\":\"\\ud800\"}}"),
      "safetensors.md 1.5: no unpaired surrogate escape", "headerNotJSON")
    s("duplicate_tensor_name", st("{\"t\":" + json.dumps(f32x2) + ",\"t\":" + json.dumps(f32x2) + "}", b"\0" * 8),
      "safetensors.md 1.6: no repeated key", "duplicateKey")
    s("duplicate_name_escaped", st("{\"a\":" + json.dumps(f32x2) + ",\"\\u0061\":" + json.dumps(f32x2) + "}", b"\0" * 8),
      "safetensors.md 1.6: keys compared after unescaping", "duplicateKey")
    s("duplicate_field", st("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", b"\0" * 8),
      "safetensors.md 1.6: no repeated field", "duplicateKey")
    s("metadata_number_value", st({"__metadata__": {"format": 1}}), "safetensors.md 2.7: __metadata__ values are strings",
      "invalidMetadata")
    s("metadata_null", st({"__metadata__": None}), "safetensors.md 2.7: __metadata__ is an object", "invalidMetadata")
    s("metadata_nested_object", st({"__metadata__": {"a": {"b": "c"}}}),
      "safetensors.md 2.7: __metadata__ values are strings", "invalidMetadata")
    s("entry_unknown_field", st({"t": dict(f32x2, extra=1)}, b"\0" * 8), "safetensors.md 2.8: exactly three fields",
      "invalidTensorEntry")
    s("entry_missing_offsets", st({"t": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
      "safetensors.md 2.8: exactly three fields", "invalidTensorEntry")
    s("entry_not_object", st({"t": [1, 2]}), "safetensors.md 2.8: entry is an object", "invalidTensorEntry")
    s("dtype_f4", st({"t": t("F4", [2], 0, 1)}, b"\0"), "safetensors.md 2.9: supported dtypes", "unsupportedDType", "F4")
    s("dtype_lowercase", st({"t": t("f32", [2], 0, 8)}, b"\0" * 8), "safetensors.md 2.9: names are case-sensitive",
      "unsupportedDType")
    s("shape_negative", st({"t": t("F32", [-1], 0, 8)}, b"\0" * 8), "safetensors.md 2.10: dims in 0...2^63-1",
      "invalidShape")
    s("shape_fraction", st({"t": t("F32", [1.5], 0, 8)}, b"\0" * 8), "safetensors.md 2.10: dims are integers",
      "invalidShape")
    s("shape_2p64", st("{\"t\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", b"\0" * 8),
      "safetensors.md 2.10: a dim beyond 64 bits (read as a double)", "invalidShape")
    s("shape_product_overflow", st({"t": t("U8", [2 ** 32, 2 ** 32], 0, 8)}, b"\0" * 8),
      "CVE class: shape product overflows int64 (safetensors.md 2.11)", "sizeOverflow")
    s("byte_size_overflow", st({"t": t("F64", [2 ** 61], 0, 8)}, b"\0" * 8),
      "CVE class: elements × dtype size overflows int64 (safetensors.md 2.11)", "sizeOverflow")
    s("offsets_three", st({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4, 8]}}, b"\0" * 8),
      "safetensors.md 2.12: exactly two offsets", "invalidDataOffsets")
    s("offsets_reversed", st({"t": t("F32", [2], 8, 0)}, b"\0" * 8), "safetensors.md 2.12: begin ≤ end",
      "invalidDataOffsets")
    s("offsets_negative", st({"t": t("F32", [2], -8, 0)}, b"\0" * 8), "safetensors.md 2.12: non-negative offsets",
      "invalidDataOffsets")
    s("dtype_size_mismatch", st({"t": t("F32", [2], 0, 4)}, b"\0" * 4), "safetensors.md 2.13: end - begin = byte size",
      "tensorSizeMismatch")
    s("tensors_overlap", st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, b"\0" * 12),
      "safetensors.md 3.14: no overlap", "overlappingTensors")
    s("tensors_out_of_order_overlap", st({"b": t("F32", [2], 8, 16), "a": t("F32", [4], 0, 16)}, b"\0" * 16),
      "safetensors.md 3.14: no overlap (header order differs from data order)", "overlappingTensors")
    s("first_tensor_not_at_zero", st({"t": t("F32", [2], 4, 12)}, b"\0" * 12), "safetensors.md 3.14: first at 0",
      "gapBetweenTensors")
    s("hole_between_tensors", st({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 12, 20)}, b"\0" * 20),
      "safetensors.md 3.14: no gap between tensors", "gapBetweenTensors")
    s("tensor_1gib_declared", st({"t": t("F32", [2 ** 28], 0, 2 ** 30)}, b"\0" * 64),
      "safetensors.md 3.15: a 1 GiB tensor declared in a tiny file", "truncatedData", huge=True)
    s("data_truncated", st({"t": t("F32", [4], 0, 16)}, b"\0" * 8), "safetensors.md 3.15: no tensor past EOF",
      "truncatedData")
    s("trailing_data", st({"t": f32x2}, b"\0" * 12), "safetensors.md 3.16: last tensor ends at EOF", "trailingData")
    s("no_tensors_with_data", st({}, b"polyglot"), "safetensors.md 3.16: no tensors, empty data section", "trailingData")


# ---------------------------------------------------------------------------------------------
# Sharded safetensors checkpoints (Formats/safetensors.md section 5), opened by directory

def shard(tensors):
    header, data, offset = {}, b"", 0
    for name in tensors:
        header[name] = t("F32", [2], offset, offset + 8)
        data += b"\0" * 8
        offset += 8
    return st(header, data)


def idx(name, files, rule, kind, message=None):
    rel = "safetensors-index/" + name
    for fname, content in files.items():
        write(rel + "/" + fname, content if isinstance(content, bytes) else content.encode())
    record(rel, "safetensors-index", "SafetensorsCheckpoint", rule, "SafetensorsError", kind, message)


INDEX = "model.safetensors.index.json"


def index_json(weight_map, metadata=None):
    doc = {"metadata": metadata or {"total_size": 16}, "weight_map": weight_map}
    return json.dumps(doc, indent=1)


def gen_index():
    a = "model-00001-of-00002.safetensors"
    b = "model-00002-of-00002.safetensors"
    idx("index_not_json", {INDEX: "{\"weight_map\": ", a: shard(["x"])}, "safetensors.md 5.17: index is JSON", "invalidIndex")
    idx("index_no_weight_map", {INDEX: "{\"metadata\": {}}", a: shard(["x"])}, "safetensors.md 5.17: weight_map present",
        "invalidIndex")
    idx("index_empty_weight_map", {INDEX: index_json({}), a: shard(["x"])}, "safetensors.md 5.17: weight_map non-empty",
        "invalidIndex")
    idx("index_value_not_string", {INDEX: index_json({"x": 1}), a: shard(["x"])},
        "safetensors.md 5.17: weight_map values are strings", "invalidIndex")
    idx("index_metadata_not_object", {INDEX: json.dumps({"metadata": [1], "weight_map": {"x": a}}), a: shard(["x"])},
        "safetensors.md 5.17: metadata is an object", "invalidIndex")
    idx("index_duplicate_key", {INDEX: "{\"weight_map\":{\"x\":\"%s\",\"x\":\"%s\"}}" % (a, b), a: shard(["x"])},
        "safetensors.md 5.17 / 1.6: no repeated key", "invalidIndex")
    idx("shard_parent_escape", {INDEX: index_json({"x": "../escape.safetensors"}), a: shard(["x"])},
        "safetensors.md 5.18: shard name without `/` (path traversal)", "unsafeShardName")
    idx("shard_absolute", {INDEX: index_json({"x": "/etc/passwd"}), a: shard(["x"])},
        "safetensors.md 5.18: shard name without `/` (absolute path)", "unsafeShardName")
    idx("shard_backslash", {INDEX: index_json({"x": "..\\escape.safetensors"}), a: shard(["x"])},
        "safetensors.md 5.18: shard name without `\\`", "unsafeShardName")
    idx("shard_dotdot", {INDEX: index_json({"x": ".."}), a: shard(["x"])}, "safetensors.md 5.18: not `..`",
        "unsafeShardName")
    idx("shard_empty_name", {INDEX: index_json({"x": ""}), a: shard(["x"])}, "safetensors.md 5.18: not empty",
        "unsafeShardName")
    idx("shard_nul", {INDEX: "{\"weight_map\":{\"x\":\"a\\u0000b\"}}", a: shard(["x"])},
        "safetensors.md 5.18: no U+0000 in the shard name", "unsafeShardName")
    idx("shard_missing", {INDEX: index_json({"x": a, "y": b}), a: shard(["x"])}, "safetensors.md 5.19: shard exists",
        "missingShard")
    idx("shard_malformed", {INDEX: index_json({"x": a}), a: u64(1000) + b"{}"},
        "safetensors.md 5.19: shard is a valid safetensors file", "headerExceedsFile", a)
    idx("tensor_missing_from_shard", {INDEX: index_json({"x": a, "y": a}), a: shard(["x"])},
        "safetensors.md 5.20: mapped tensor present in its shard", "tensorMissingFromShard")
    idx("tensor_not_in_index", {INDEX: index_json({"x": a}), a: shard(["x", "z"])},
        "safetensors.md 5.21: shard tensor listed in weight_map", "tensorNotInIndex")
    idx("tensor_in_two_shards", {INDEX: index_json({"x": a, "y": b}), a: shard(["x"]), b: shard(["x", "y"])},
        "safetensors.md 5.21: a tensor in two shards", "tensorInTwoShards")
    idx("no_checkpoint", {"README.txt": "neither an index nor model.safetensors\n"},
        "safetensors.md 5: a directory needs an index or model.safetensors", "noCheckpoint")


# ---------------------------------------------------------------------------------------------
# .sprompt (Formats/sprompt.md section 6): hostile sizes, beyond CorruptionTests

SPROMPT_MAGIC = b"\x89SPROMPT"


def zstd_raw_frame(payload, declared=None):
    """One zstd frame (RFC 8878) holding `payload` in a single raw block, single-segment, with an
    8-byte content size field (`declared`, default the payload's length)."""
    fhd = 0xE0  # Frame_Content_Size_flag 3 (8 bytes), Single_Segment_flag 1, no checksum, no dictionary
    size = len(payload) if declared is None else declared
    block = u32(1 | (0 << 1) | (len(payload) << 3))[:3]  # last block, raw, Block_Size
    return b"\x28\xb5\x2f\xfd" + u8(fhd) + u64(size) + block + payload


def sprompt(meta, stored, U, M=None, S=None, version=1, flags=0, raw_meta=None):
    meta_bytes = raw_meta if raw_meta is not None else json.dumps(meta, separators=(",", ":")).encode()
    head = SPROMPT_MAGIC + u32(version) + u32(flags)
    head += u64(len(meta_bytes) if M is None else M) + u64(U) + u64(len(stored) if S is None else S)
    checksum = hashlib.sha256(head + meta_bytes).digest()
    return head + checksum + meta_bytes + stored


def prompt_meta(payload, shape=(1, 4), offset=0, length=None, extra=None):
    p = {"name": "p", "dtype": "f32", "shape": list(shape), "offset": offset,
         "length": shape[0] * shape[1] * 4 if length is None else length, "placement": "prefix"}
    meta = {"compression": "zstd", "filter": "none", "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "prompts": [p]}
    if extra:
        meta.update(extra)
    return meta


def sp(name, data, rule, kind, message=None, huge=False):
    rel = "sprompt/" + name + ".sprompt"
    write(rel, data)
    record(rel, "sprompt", "PromptFile.read", rule, "SpromptError", kind, message, huge)


def gen_sprompt():
    payload = struct.pack("<4f", 1.0, -2.0, 0.5, 0.25)
    meta = prompt_meta(payload)
    frame = zstd_raw_frame(payload)
    sp("frame_declares_2p40", sprompt(meta, zstd_raw_frame(payload, declared=2 ** 40), 16),
       "sprompt.md 6 rule 29: huge declared zstd content size (2^40) ≠ U", "frameSizeMismatch", huge=True)
    sp("frame_declares_max_u64", sprompt(meta, zstd_raw_frame(payload, declared=2 ** 64 - 1), 16),
       "sprompt.md 6 rule 29: declared zstd content size 2^64-1 (zstd's 'unknown' sentinel)", "invalidFrame", huge=True)
    sp("payload_size_2p63", sprompt(meta, frame, 2 ** 63), "sprompt.md 6 rule 7: U ≤ 1 GiB", "payloadTooLarge", huge=True)
    sp("payload_1gib_from_32_bytes", sprompt(meta, frame, 2 ** 30),
       "sprompt.md 6 rule 9: U ≤ 32768 × S (decompression bomb)", "decompressionBomb", huge=True)
    sp("stored_size_max_u64", sprompt(meta, frame, 16, S=2 ** 64 - 1), "sprompt.md 6 rule 8: S bounded by U",
       "payloadTooLarge")
    sp("metadata_size_max_u64", sprompt(meta, frame, 16, M=2 ** 64 - 1), "sprompt.md 6 rule 6: M ≤ 16 MiB",
       "metadataTooLarge", huge=True)
    sp("metadata_size_16mib_past_eof", sprompt(meta, frame, 16, M=16 << 20), "sprompt.md 6 rule 10: whole metadata",
       "truncated", huge=True)
    sp("metadata_nesting_20000",
       sprompt(None, frame, 16, raw_meta=b"{\"metadata\":" + b"[" * 20000 + b"]" * 20000 + b"}"),
       "sprompt.md 2: nesting at most 64 deep (20,000 deep)", "invalidJSON")
    sp("offset_2p40", sprompt(prompt_meta(payload, offset=2 ** 40), frame, 16),
       "sprompt.md 6 rule 19: offset within 0...2^30", "invalidValue")
    sp("shape_product_over_1gib", sprompt(prompt_meta(payload, shape=(2 ** 20, 2 ** 20), length=16), frame, 16),
       "sprompt.md 6 rule 22: tokens × width × size ≤ 1 GiB", "invalidShape")
    sp("sketch_4097_values",
       sprompt(prompt_meta(payload, extra={"model": {
           "architecture": "llama", "embedding_length": 4, "layer_count": 1, "vocab_size": 10,
           "weights": {"sketch_version": 1, "sketch": [0] * 4097, "norms": [0] * 4097, "rows_sha256": SHA}}}),
           frame, 16),
       "sprompt.md 2.3: sketch of 1...4096 numbers", "invalidValue")
    sp("version_2_truncated", SPROMPT_MAGIC + u32(2), "sprompt.md 6 rules 2-3: version 1", "unsupportedVersion")


# ---------------------------------------------------------------------------------------------
# PEFT adapter directories (Formats/peft.md), read through PromptConversion.read

def peft_config(**over):
    cfg = {"peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 2, "token_dim": 4,
           "num_transformer_submodules": 1, "inference_mode": True}
    for k, v in over.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return json.dumps(cfg, indent=2, sort_keys=True)


def peft_weights(shape=(2, 4), dtype="F32", name="prompt_embeddings", metadata=None, extra_tensors=()):
    size = {"F32": 4, "F16": 2, "I32": 4, "F64": 8}[dtype]
    n = 1
    for d in shape:
        n *= d
    header = {"__metadata__": dict({"format": "pt"}, **(metadata or {}))}
    header[name] = t(dtype, list(shape), 0, n * size)
    data = b"\0" * (n * size)
    for extra in extra_tensors:
        header[extra] = t("F32", [1], len(data), len(data) + 4)
        data += b"\0" * 4
    return st(header, data)


def pf(name, files, rule, message):
    rel = "peft/" + name
    for fname, content in files.items():
        write(rel + "/" + fname, content if isinstance(content, bytes) else content.encode())
    record(rel, "peft", "PromptConversion.read", rule, "PromptConversionError", None, message)


def gen_peft():
    C, W = "adapter_config.json", "adapter_model.safetensors"
    pf("no_config", {W: peft_weights()}, "peft.md 1: adapter_config.json present", "no adapter_config.json")
    pf("config_not_json", {C: "{\"peft_type\": \"PROMPT_TUNING\",", W: peft_weights()},
       "peft.md 1: adapter_config.json is a JSON object", "adapter_config.json")
    pf("config_array", {C: "[1, 2]", W: peft_weights()}, "peft.md 1: adapter_config.json is a JSON object",
       "not a JSON object")
    pf("config_duplicate_key", {C: "{\"peft_type\": \"PROMPT_TUNING\", \"peft_type\": \"LORA\"}", W: peft_weights()},
       "peft.md 3 (strict JSON, sprompt.md 2): no repeated key", "duplicate")
    pf("peft_type_lora", {C: peft_config(peft_type="LORA"), W: peft_weights()},
       "peft.md 3 Reading: peft_type PROMPT_TUNING or P_TUNING", "is not a soft prompt")
    pf("peft_type_prefix_tuning", {C: peft_config(peft_type="PREFIX_TUNING"), W: peft_weights()},
       "peft.md 2: PREFIX_TUNING refused", "PREFIX_TUNING")
    pf("peft_type_missing", {C: peft_config(peft_type=None), W: peft_weights()},
       "peft.md 3 Reading: peft_type required", "(none)")
    pf("pickle_only", {C: peft_config(), "adapter_model.bin": b"\x80\x02}q\x00."},
       "peft.md 3 Reading: adapter_model.bin (a pickle) refused", "pickle")
    pf("no_weights", {C: peft_config()}, "peft.md 1: adapter_model.safetensors present", "no adapter_model.safetensors")
    pf("virtual_tokens_zero", {C: peft_config(num_virtual_tokens=0), W: peft_weights()},
       "peft.md 3 Reading: num_virtual_tokens positive", "num_virtual_tokens")
    pf("virtual_tokens_string", {C: peft_config(num_virtual_tokens="2"), W: peft_weights()},
       "peft.md 3 Reading: num_virtual_tokens an integer", "num_virtual_tokens")
    pf("token_dim_2p40", {C: peft_config(token_dim=2 ** 40), W: peft_weights()},
       "peft.md 3 Reading: token_dim positive (within 1...2^20)", "token_dim")
    pf("token_dim_missing", {C: peft_config(token_dim=None), W: peft_weights()},
       "peft.md 3 Reading: token_dim required", "token_dim")
    pf("submodules_2", {C: peft_config(num_transformer_submodules=2), W: peft_weights()},
       "peft.md 3 Reading: num_transformer_submodules 1", "num_transformer_submodules")
    pf("shape_differs_from_config", {C: peft_config(num_virtual_tokens=3), W: peft_weights()},
       "peft.md 3 Reading: tensor exactly [num_virtual_tokens, token_dim]", "the config says")
    pf("dtype_i32", {C: peft_config(), W: peft_weights(dtype="I32")},
       "peft.md 3 Reading: F32, F16, BF16 or F64", "a prompt is F32")
    pf("tensor_3d", {C: peft_config(), W: peft_weights(shape=(2, 4, 1))},
       "peft.md 1: prompt_embeddings is 2-D", "[tokens, width]")
    pf("two_tensors_unnamed", {C: peft_config(), W: peft_weights(name="a", extra_tensors=["b"])},
       "peft.md 1: one tensor, prompt_embeddings", "expected one tensor")
    pf("weights_header_past_eof", {C: peft_config(), W: u64(4096) + b"{}"},
       "peft.md 1 / safetensors.md 1.2: adapter_model.safetensors is valid safetensors", "header")
    pf("weights_overlapping", {C: peft_config(), W: st({"prompt_embeddings": t("F32", [2, 4], 0, 32),
                                                        "b": t("F32", [1], 28, 32)}, b"\0" * 32)},
       "peft.md 1 / safetensors.md 3.14: adapter_model.safetensors is valid safetensors", "overlap")
    pf("metadata_template_without_input",
       {C: peft_config(), W: peft_weights(metadata={"sprompt.template": "Q: {question}"})},
       "peft.md 3 Writing (sprompt.template) / sprompt.md 5: template contains {input}", "lacks {input}")
    pf("metadata_name_control_char", {C: peft_config(), W: peft_weights(metadata={"sprompt.name": "a\nb"})},
       "peft.md 3 (sprompt.name) / sprompt.md 2.2: name without control characters", "sprompt.name")
    pf("metadata_model_width_differs",
       {C: peft_config(), W: peft_weights(metadata={"sprompt.model": json.dumps(
           {"architecture": "llama", "embedding_length": 8, "layer_count": 2, "vocab_size": 100},
           separators=(",", ":"))})},
       "peft.md 3 (sprompt.model) / sprompt.md 2.2: width equals model.embedding_length", "embedding_length")


# ---------------------------------------------------------------------------------------------
# Task data JSONL (Formats/training.md, Task data), read with TaskDataset.load

def tr(name, text, rule, message):
    rel = "training/" + name + ".jsonl"
    write(rel, text if isinstance(text, bytes) else text.encode())
    record(rel, "training", "TaskDataset.load", rule, "DatasetError", None, message)


def gen_training():
    ok = "{\"input\": \"a\", \"output\": \" b\"}\n"
    tr("empty", "", "training.md Task data: no rows at all", "no examples")
    tr("only_blank_lines", "  \n\t\n\r\n", "training.md Task data: no rows at all", "no examples")
    tr("invalid_json_line_3", ok + ok + "{\"input\": \"a\", \"output\": }\n",
       "training.md Task data: not valid JSON (line number)", ".jsonl:3: invalid JSON at byte")
    tr("invalid_utf8", b"{\"input\": \"\xc0\xaf\", \"output\": \" b\"}\n", "training.md Task data: UTF-8", "invalid JSON")
    tr("nesting_20000", "{\"input\": \"a\", \"output\": \" b\", \"x\": " + "[" * 20000 + "]" * 20000 + "}\n",
       "training.md Task data: RFC 8259 JSON (20,000-deep nesting, stack exhaustion)", "invalid JSON")
    tr("duplicate_key", "{\"input\": \"a\", \"output\": \" b\", \"output\": \" c\"}\n",
       "training.md Task data: duplicate keys refused", "duplicate")
    tr("not_an_object", "[\"a\", \" b\"]\n", "training.md Task data: one JSON object per line", "expected a JSON object")
    tr("two_objects_one_line", ok.strip() + ok, "training.md Task data: one JSON object per line", "invalid JSON")
    tr("input_missing", "{\"output\": \" b\"}\n", "training.md Task data: input present", "\"input\" must be a string")
    tr("input_number", "{\"input\": 1, \"output\": \" b\"}\n", "training.md Task data: input a string",
       "\"input\" must be a string")
    tr("output_missing", "{\"input\": \"a\"}\n", "training.md Task data: output present", "\"output\" must be a string")
    tr("output_null", "{\"input\": \"a\", \"output\": null}\n", "training.md Task data: output a string",
       "\"output\" must be a string")
    tr("output_empty", "{\"input\": \"a\", \"output\": \"\"}\n", "training.md Task data: output non-empty", "is empty")
    tr("choices_empty", "{\"input\": \"a\", \"output\": \" b\", \"choices\": []}\n",
       "training.md Task data: choices non-empty", "non-empty array of strings")
    tr("choices_string", "{\"input\": \"a\", \"output\": \" b\", \"choices\": \" b\"}\n",
       "training.md Task data: choices an array", "non-empty array of strings")
    tr("choice_number", "{\"input\": \"a\", \"output\": \" b\", \"choices\": [\" b\", 2]}\n",
       "training.md Task data: choices hold strings", "must hold strings only")
    tr("choice_repeated", "{\"input\": \"a\", \"output\": \" b\", \"choices\": [\" b\", \" c\", \" b\"]}\n",
       "training.md Task data: no repeated choice", "repeats")
    tr("output_not_a_choice", "{\"input\": \"a\", \"output\": \" b\", \"choices\": [\" c\", \" d\"]}\n",
       "training.md Task data: output among choices", "is not one of the choices")


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizer.json (rules: the header comment of Sources/Tokenizers/HuggingFaceTokenizer.swift)

def tokenizer(**over):
    doc = {"version": "1.0", "added_tokens": [], "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "byte_fallback": False,
                     "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    for k, v in over.items():
        if k.startswith("model_"):
            doc["model"][k[6:]] = v
        else:
            doc[k] = v
    return json.dumps(doc, indent=1)


def tk(name, text, rule, kind, message=None, huge=False):
    rel = "tokenizer/" + name
    write(rel + "/tokenizer.json", text.encode() if isinstance(text, str) else text)
    record(rel, "tokenizer", "TokenizerVocabulary(huggingFaceDirectory:)", rule, "HuggingFaceTokenizerError", kind,
           message, huge)


def gen_tokenizer():
    tk("not_json", "{\"model\": {\"type\": \"BPE\",", "tokenizer.json is JSON", "unreadable")
    tk("nesting_20000", "{\"x\": " + "[" * 20000 + "]" * 20000 + "}", "JSON nesting bounded (20,000 deep)",
       "unreadable")
    tk("duplicate_key", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}",
       "strict JSON: no repeated key", "unreadable")
    tk("no_model", json.dumps({"version": "1.0"}), "model object required", "malformed", "'model'")
    tk("model_unigram", tokenizer(model_type="Unigram"), "model type BPE only", "unsupported", "Unigram")
    tk("byte_fallback", tokenizer(model_byte_fallback=True), "byte_fallback false only", "unsupported", "byte_fallback")
    tk("vocab_not_object", tokenizer(model_vocab=["a", "b"]), "model.vocab is an object", "malformed", "model.vocab")
    tk("vocab_id_negative", tokenizer(model_vocab={"a": -1}), "vocab ids in 0..<2^31-1", "malformed")
    tk("vocab_id_2p31", tokenizer(model_vocab={"a": 2 ** 31}), "vocab ids in 0..<2^31-1", "malformed")
    tk("vocab_id_shared", tokenizer(model_vocab={"a": 0, "b": 0}), "vocab ids unique", "malformed", "both")
    tk("vocab_sparse_id", tokenizer(model_vocab={"a": 0, "b": 2 ** 31 - 2}, model_merges=[]),
       "ids dense (a 2^31-2 id would size a 2-billion-entry table)", "malformed", "gaps", huge=True)
    tk("added_token_without_id", tokenizer(added_tokens=[{"content": "<s>", "special": True}]),
       "added_tokens entries have id and content", "malformed", "added_tokens[0]")
    tk("added_token_sparse_id", tokenizer(added_tokens=[{"id": 2 ** 31 - 2, "content": "<s>", "special": True}]),
       "ids dense (added token at 2^31-2)", "malformed", "gaps", huge=True)
    tk("merge_without_space", tokenizer(model_merges=["ab"]), "merges are 'left right'", "malformed", "merges[0]")
    tk("merge_not_pair", tokenizer(model_merges=[["a", "b", "c"]]), "merges as pairs have two parts", "malformed",
       "merges[0]")
    tk("normalizer_lowercase", tokenizer(normalizer={"type": "Lowercase"}), "normalizer null or NFC", "unsupported",
       "Lowercase")
    tk("post_processor_unknown_token",
       tokenizer(post_processor={"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                            {"Sequence": {"id": "A", "type_id": 0}}],
                                 "special_tokens": {"<s>": {"id": "<s>", "ids": [9], "tokens": ["<s>"]}}}),
       "post_processor tokens are in the vocabulary", "malformed", "not a token")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gen_gguf()
    gen_gguf_adapter()
    gen_safetensors()
    gen_index()
    gen_sprompt()
    gen_peft()
    gen_training()
    gen_tokenizer()
    paths = [e["path"] for e in ENTRIES]
    assert len(paths) == len(set(paths)), "duplicate corpus path"
    manifest = {
        "description": "Malformed and hostile inputs; each must be refused with the error named. "
                       "Regenerate with Tools/scripts/gen_malformed_corpus.py.",
        "entries": ENTRIES,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    counts = {}
    for e in ENTRIES:
        counts[e["format"]] = counts.get(e["format"], 0) + 1
    print(len(ENTRIES), "entries:", ", ".join("%s %d" % kv for kv in sorted(counts.items())))


if __name__ == "__main__":
    main()
