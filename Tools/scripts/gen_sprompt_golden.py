#!/usr/bin/env python3
"""An independent Python implementation of Formats/sprompt.md (writer, validating reader, model fingerprint).

    gen_sprompt_golden.py                  write Formats/golden/*.sprompt + expected.json, and (when the
                                           default model is present) Tests/Fixtures/sprompt/default-fingerprint.json
    gen_sprompt_golden.py --verify F...    validate files written by anyone; print what they hold
    gen_sprompt_golden.py --record-swift D validate the files the Swift writer left in D (see SpromptGoldenTests)
                                           and record the result in Formats/golden/swift-written.json
    gen_sprompt_golden.py --fingerprint M  print the fingerprint of a GGUF model

Written from the spec alone (numpy, hashlib, zstandard, gguf); it shares no code with the Swift module.
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import zstandard

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.path.join(ROOT, "Formats", "golden")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "sprompt")
DEFAULT_MODEL = os.path.expanduser("~/.cache/softpromptkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")

MAGIC = b"\x89SPROMPT"
HEADER = 72
MAX_METADATA = 16 << 20
MAX_PAYLOAD = 1 << 30
MAX_DIM = 1 << 20
EXPANSION = 32768
DTYPE_SIZE = {"f32": 4, "f16": 2, "bf16": 2}
TOP_KEYS = ["compression", "filter", "payload_sha256", "model", "prompts", "metadata"]
PROMPT_KEYS = ["name", "dtype", "shape", "offset", "length", "placement", "template", "provenance", "metrics"]
MODEL_KEYS = ["architecture", "embedding_length", "layer_count", "vocab_size", "tokenizer_sha256", "weights"]
WEIGHT_KEYS = ["sketch_version", "sketch", "norms", "rows_sha256"]


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def to_bf16_bits(x):
    bits = np.asarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def encode_values(values, dtype):
    values = np.asarray(values, dtype=np.float32)
    if dtype == "f32":
        return values.astype("<f4").tobytes()
    if dtype == "f16":
        return values.astype("<f2").tobytes()
    return to_bf16_bits(values).tobytes()


def decode_values(raw, dtype):
    if dtype == "f32":
        return np.frombuffer(raw, "<f4").astype(np.float32)
    if dtype == "f16":
        return np.frombuffer(raw, "<f2").astype(np.float32)
    return (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4").astype(np.float32)


def shuffle(raw, size):
    return np.frombuffer(raw, np.uint8).reshape(-1, size).T.copy().tobytes()


def unshuffle(raw, size):
    return np.frombuffer(raw, np.uint8).reshape(size, -1).T.copy().tobytes()


def write(model, prompts, metadata=None, filt="byte_shuffle", level=19):
    """prompts: list of dicts with name, dtype, values (tokens x width array), and optional
    template / provenance / metrics. Returns the file bytes."""
    payload, stored, entries = b"", b"", []
    for p in prompts:
        values = np.asarray(p["values"], dtype=np.float32)
        raw = encode_values(values, p["dtype"])
        entry = {"name": p["name"], "dtype": p["dtype"], "shape": list(values.shape), "offset": len(payload),
                 "length": len(raw), "placement": "prefix"}
        for key in ("template", "provenance", "metrics"):
            if p.get(key):
                entry[key] = p[key]
        entries.append(entry)
        payload += raw
        stored += shuffle(raw, DTYPE_SIZE[p["dtype"]]) if filt == "byte_shuffle" else raw
    top = {"compression": "zstd", "filter": filt, "payload_sha256": hashlib.sha256(payload).hexdigest()}
    if model is not None:
        top["model"] = model
    top["prompts"] = entries
    if metadata:
        top["metadata"] = metadata
    meta = dumps(top)
    frame = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False).compress(stored)
    head = MAGIC + struct.pack("<IIQQQ", 1, 0, len(meta), len(payload), len(frame))
    return head + hashlib.sha256(head + meta).digest() + meta + frame


class Refused(Exception):
    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def read(data):
    """Validates `data` against every rule of the spec, in the spec's order; returns
    (metadata dict, [(entry, float32 values)])."""
    def need(cond, kind, message):
        if not cond:
            raise Refused(kind, message)

    n = len(data)
    need(data[:min(n, 8)] == MAGIC[:min(n, 8)], "badMagic", "magic")
    need(n >= 12, "truncated", "header")
    version, flags = struct.unpack_from("<II", data, 8)
    need(version == 1, "unsupportedVersion", str(version))
    need(n >= HEADER, "truncated", "header")
    need(flags == 0, "reservedFlags", str(flags))
    m, u, s = struct.unpack_from("<QQQ", data, 16)
    need(m <= MAX_METADATA, "metadataTooLarge", str(m))
    need(u <= MAX_PAYLOAD, "payloadTooLarge", str(u))
    need(s <= u + u // 256 + 1024, "payloadTooLarge", str(s))
    need(u <= EXPANSION * s, "decompressionBomb", f"{u} from {s}")
    need(n >= HEADER + m, "truncated", "metadata")
    need(n >= HEADER + m + s, "truncated", "payload")
    need(n == HEADER + m + s, "trailingBytes", str(n - HEADER - m - s))
    meta_bytes = data[HEADER:HEADER + m]
    need(hashlib.sha256(data[:40] + meta_bytes).digest() == data[40:72], "headerChecksumMismatch", "")

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise Refused("duplicateKey", "duplicate key")
        return dict(items)

    def no_constant(name):
        raise Refused("invalidJSON", name)

    try:
        top = json.loads(meta_bytes.decode("utf-8"), object_pairs_hook=pairs, parse_constant=no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Refused("invalidJSON", str(e))
    need(isinstance(top, dict), "invalidJSON", "not an object")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_hash(v):
        return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)

    def keys(obj, allowed):
        for k in obj:
            need(k in allowed, "unknownKey", k)

    def req(obj, k):
        need(k in obj, "missingKey", k)
        return obj[k]

    def typed(v, t, what):
        ok = is_int(v) if t is int else isinstance(v, t)
        need(ok, "wrongType", what)
        return v

    keys(top, TOP_KEYS)
    need(typed(req(top, "compression"), str, "compression") == "zstd", "invalidValue", "compression")
    filt = typed(req(top, "filter"), str, "filter")
    need(filt in ("none", "byte_shuffle"), "invalidValue", "filter")
    need(is_hash(typed(req(top, "payload_sha256"), str, "payload_sha256")), "invalidValue", "payload_sha256")
    model = top.get("model")
    if "model" in top:
        typed(model, dict, "model")
        keys(model, MODEL_KEYS)
        need(typed(req(model, "architecture"), str, "architecture") != "", "invalidValue", "architecture")
        for k, hi in (("embedding_length", MAX_DIM), ("layer_count", 2**31 - 1), ("vocab_size", 2**31 - 1)):
            need(1 <= typed(req(model, k), int, k) <= hi, "invalidValue", k)
        if "tokenizer_sha256" in model:
            need(is_hash(typed(model["tokenizer_sha256"], str, "tokenizer_sha256")), "invalidValue", "tokenizer")
        if "weights" in model:
            w = typed(model["weights"], dict, "weights")
            keys(w, WEIGHT_KEYS)
            need(1 <= typed(req(w, "sketch_version"), int, "sketch_version") <= 2**31 - 1, "invalidValue", "sketch_version")
            sk = typed(req(w, "sketch"), list, "sketch")
            nr = typed(req(w, "norms"), list, "norms")
            need(1 <= len(sk) <= 4096 and len(nr) == len(sk), "invalidValue", "sketch length")
            for v in sk + nr:
                need(isinstance(v, (int, float)) and not isinstance(v, bool), "wrongType", "sketch value")
            need(all(v >= 0 for v in nr), "invalidValue", "norm")
            need(is_hash(typed(req(w, "rows_sha256"), str, "rows_sha256")), "invalidValue", "rows_sha256")
    prompts = typed(req(top, "prompts"), list, "prompts")
    need(len(prompts) >= 1, "noPrompts", "")
    need(len(prompts) <= 65536, "invalidValue", "too many prompts")
    names, nxt, width0, entries = set(), 0, None, []
    for p in prompts:
        typed(p, dict, "prompt")
        keys(p, PROMPT_KEYS)
        name = typed(req(p, "name"), str, "name")
        raw = name.encode("utf-8")
        need(1 <= len(raw) <= 256 and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name), "invalidPromptName", name)
        dtype = typed(req(p, "dtype"), str, "dtype")
        need(dtype in DTYPE_SIZE, "invalidValue", dtype)
        shape = typed(req(p, "shape"), list, "shape")
        for d in shape:
            need(is_int(d), "wrongType", "shape")
        need(len(shape) == 2 and all(1 <= d <= MAX_DIM for d in shape), "invalidShape", str(shape))
        size = shape[0] * shape[1] * DTYPE_SIZE[dtype]
        need(size <= MAX_PAYLOAD, "invalidShape", str(shape))
        off = typed(req(p, "offset"), int, "offset")
        need(0 <= off <= MAX_PAYLOAD, "invalidValue", "offset")
        length = typed(req(p, "length"), int, "length")
        need(0 <= length <= MAX_PAYLOAD, "invalidValue", "length")
        need(length == size, "promptLayout", "length")
        need(typed(req(p, "placement"), str, "placement") == "prefix", "invalidValue", "placement")
        if "template" in p:
            need("{input}" in typed(p["template"], str, "template"), "invalidTemplate", "")
        for k in ("provenance", "metrics"):
            if k in p:
                typed(p[k], dict, k)
        need(name not in names, "duplicatePromptName", name)
        names.add(name)
        width = shape[1]
        if model is not None:
            need(width == model["embedding_length"], "widthMismatch", name)
        need(width0 is None or width == width0, "widthMismatch", name)
        width0 = width
        need(off == nxt, "promptLayout", "offset")
        nxt += length
        entries.append(p)
    need(nxt == u, "payloadSizeMismatch", f"{nxt} vs {u}")
    if "metadata" in top:
        typed(top["metadata"], dict, "metadata")
    frame = data[HEADER + m:]
    need(s >= 4 and frame[:4] == b"\x28\xb5\x2f\xfd", "invalidFrame", "magic")
    params = zstandard.get_frame_parameters(frame)
    need(params.content_size != zstandard.CONTENTSIZE_UNKNOWN, "invalidFrame", "no content size")
    need(params.content_size == u, "frameSizeMismatch", f"{params.content_size} vs {u}")
    d = zstandard.ZstdDecompressor().decompressobj()
    try:
        out = d.decompress(frame)
    except zstandard.ZstdError as e:
        raise Refused("decompressionFailed", str(e))
    need(d.eof and not d.unused_data, "frameLengthMismatch", "")
    need(len(out) == u, "decompressionFailed", "size")
    if filt == "byte_shuffle":
        parts = [unshuffle(out[p["offset"]:p["offset"] + p["length"]], DTYPE_SIZE[p["dtype"]]) for p in entries]
        out = b"".join(parts)
    need(hashlib.sha256(out).hexdigest() == top["payload_sha256"], "payloadChecksumMismatch", "")
    values = [decode_values(out[p["offset"]:p["offset"] + p["length"]], p["dtype"]).reshape(p["shape"]) for p in entries]
    return top, list(zip(entries, values))


# MARK: fingerprint (spec section 4)

def splitmix64(state):
    mask = (1 << 64) - 1
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def gguf_strings(field):
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def tokenizer_hash(reader):
    f = reader.fields
    out = bytearray(b"sprompt-tokenizer-v1\x00")

    def text(s):
        b = s.encode("utf-8")
        out.extend(struct.pack("<Q", len(b)) + b)

    text(gguf_strings(f["tokenizer.ggml.model"])[0])
    text(gguf_strings(f["tokenizer.ggml.pre"])[0] if "tokenizer.ggml.pre" in f else "")
    tokens = gguf_strings(f["tokenizer.ggml.tokens"])
    out.extend(struct.pack("<Q", len(tokens)))
    for t in tokens:
        text(t)
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data] \
        if "tokenizer.ggml.token_type" in f else []
    for i in range(len(tokens)):
        out.extend(struct.pack("<i", types[i] if i < len(types) else 1))
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data] \
        if "tokenizer.ggml.scores" in f else []
    for i in range(len(tokens)):
        x = np.float32(scores[i] if i < len(scores) else 0.0)
        if x == 0:
            x = np.float32(0.0)
        out.extend(struct.pack("<I", 0x7FC00000) if np.isnan(x) else x.astype("<f4").tobytes())
    merges = gguf_strings(f["tokenizer.ggml.merges"]) if "tokenizer.ggml.merges" in f else []
    out.extend(struct.pack("<Q", len(merges)))
    for mrg in merges:
        text(mrg)
    return hashlib.sha256(bytes(out)).hexdigest()


def fingerprint(path):
    import gguf
    r = gguf.GGUFReader(path)
    arch = gguf_strings(r.fields["general.architecture"])[0]
    tensors = {t.name: t for t in r.tensors}
    width = int(r.fields[f"{arch}.embedding_length"].parts[-1][0])
    layers = int(r.fields[f"{arch}.block_count"].parts[-1][0])
    emb = tensors["token_embd.weight"]
    vocab = int(emb.shape[1])
    plan = [(emb, 16)]
    idx = []
    for i in (0, (layers - 1) // 2, layers - 1):
        if i not in idx:
            idx.append(i)
    for i in idx:
        for m in ("attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            plan.append((tensors[f"blk.{i}.{m}.weight"], 2))
    if "output.weight" in tensors:
        plan.append((tensors["output.weight"], 4))
    gen = splitmix64(0x5350524F4D505431)
    sketch, norms, h = [], [], hashlib.sha256()
    for t, count in plan:
        cols, rows = int(t.shape[0]), int(t.shape[1])
        data = np.asarray(t.data).reshape(rows, -1)
        for _ in range(count):
            r_i = next(gen) % rows
            row_bytes = np.ascontiguousarray(data[r_i]).view(np.uint8)
            w = gguf.quants.dequantize(row_bytes, t.tensor_type).astype(np.float32).reshape(-1).astype(np.float64)
            signs = np.array([-1.0 if next(gen) >> 63 else 1.0 for _ in range(cols)])
            sketch.append(math.fsum(w * signs))
            norms.append(math.sqrt(math.fsum(w * w)))
            h.update(struct.pack("<IQQ", int(t.tensor_type), cols, r_i))
            h.update(row_bytes.tobytes())
    return {"architecture": arch, "embedding_length": width, "layer_count": layers, "vocab_size": vocab,
            "tokenizer_sha256": tokenizer_hash(r),
            "weights": {"sketch_version": 1, "sketch": sketch, "norms": norms, "rows_sha256": h.hexdigest()}}


# MARK: golden files

def golden_cases():
    rng = np.random.default_rng(20240605)
    tok_hash = hashlib.sha256(b"golden tokenizer").hexdigest()
    full_model = {"architecture": "llama", "embedding_length": 64, "layer_count": 2, "vocab_size": 256,
                  "tokenizer_sha256": tok_hash,
                  "weights": {"sketch_version": 1,
                              "sketch": [round(float(x), 6) for x in rng.normal(0, 1, 8)],
                              "norms": [round(float(x), 6) for x in rng.uniform(0.5, 2, 8)],
                              "rows_sha256": hashlib.sha256(b"golden rows").hexdigest()}}
    f16 = rng.normal(0, 0.5, (3, 64)).astype(np.float32)
    f16[0, :6] = [65504.0, -65504.0, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 6.0e-8, -0.0]  # max, ties to even, subnormal
    bf16 = rng.normal(0, 0.5, (5, 64)).astype(np.float32)
    bf16[0, :4] = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 3.0e38, -1e-40], dtype=np.float32)
    return {
        "single-f32": dict(model=full_model, filt="byte_shuffle", metadata=None, prompts=[
            {"name": "default", "dtype": "f32", "values": rng.normal(0, 0.1, (4, 64)).astype(np.float32),
             "template": "Question: {input}\nAnswer:",
             "provenance": {"trainer": "gen_sprompt_golden.py", "steps": 100, "model": "tiny \"golden\""},
             "metrics": {"loss": 1.25, "accuracy": 0.5}}]),
        "bank-f16-bf16": dict(model={k: v for k, v in full_model.items() if k != "weights"}, filt="byte_shuffle",
                              metadata={"note": "two prompts", "created_by": ["python", 3]}, prompts=[
            {"name": "summarize", "dtype": "f16", "values": f16, "template": "{input}\nTL;DR:"},
            {"name": "traduire→fr", "dtype": "bf16", "values": bf16, "metrics": {"bleu": 31.5}}]),
        "no-fingerprint": dict(model=None, filt="none", metadata=None, prompts=[
            {"name": "p", "dtype": "f32", "values": rng.normal(0, 1, (2, 64)).astype(np.float32)}]),
    }


def describe(data):
    top, prompts = read(data)
    m = struct.unpack_from("<Q", data, 16)[0]
    return {
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "metadata_json": data[HEADER:HEADER + m].decode("utf-8"),
        "payload_sha256": top["payload_sha256"],
        "model": top.get("model"),
        "metadata": top.get("metadata", {}),
        "prompts": [{"name": e["name"], "dtype": e["dtype"], "shape": e["shape"], "placement": e["placement"],
                     "template": e.get("template"), "provenance": e.get("provenance", {}),
                     "metrics": e.get("metrics", {}),
                     "values_f32_sha256": hashlib.sha256(v.astype("<f4").tobytes()).hexdigest(),
                     "first_values": [float(x) for x in v.reshape(-1)[:8]]}
                    for e, v in prompts],
    }


def generate():
    os.makedirs(GOLDEN, exist_ok=True)
    expected = {"generator": "Tools/scripts/gen_sprompt_golden.py", "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
                "files": {}}
    for name, case in golden_cases().items():
        data = write(case["model"], case["prompts"], case["metadata"], case["filt"])
        with open(os.path.join(GOLDEN, name + ".sprompt"), "wb") as f:
            f.write(data)
        expected["files"][name + ".sprompt"] = describe(data)
        print(f"{name}.sprompt: {len(data)} bytes")
    with open(os.path.join(GOLDEN, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if os.path.exists(DEFAULT_MODEL):
        os.makedirs(FIXTURES, exist_ok=True)
        fp = fingerprint(DEFAULT_MODEL)
        with open(os.path.join(FIXTURES, "default-fingerprint.json"), "w") as f:
            json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "fingerprint": fp}, f, indent=1)
            f.write("\n")
        print("default-fingerprint.json written")


def record_swift(directory):
    results = {"verifier": "Tools/scripts/gen_sprompt_golden.py --record-swift", "files": {}}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".sprompt"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        d = describe(data)
        results["files"][name] = {"accepted": True, "file_sha256": d["file_sha256"],
                                  "metadata_sha256": hashlib.sha256(d["metadata_json"].encode()).hexdigest(),
                                  "payload_sha256": d["payload_sha256"],
                                  "prompts": [{"name": p["name"], "values_f32_sha256": p["values_f32_sha256"]}
                                              for p in d["prompts"]]}
        print(f"{name}: accepted by the Python reader")
    with open(os.path.join(GOLDEN, "swift-written.json"), "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")


def check_corruptions(directory):
    """Each file NAME.KIND.sprompt (written by CorruptionTests with SPROMPT_CORRUPT_OUT) must be refused
    with KIND. Records the result in Formats/golden/corruptions-python.json."""
    results, disagreements = {}, 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".sprompt"):
            continue
        case, kind = name[:-len(".sprompt")].split(".")
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        try:
            read(data)
            got = "accepted"
        except Refused as e:
            got = e.kind
        results[case] = {"expected": kind, "python": got}
        if got != kind:
            disagreements += 1
            print(f"{case}: Swift {kind}, Python {got}")
    with open(os.path.join(GOLDEN, "corruptions-python.json"), "w") as f:
        json.dump({"checker": "Tools/scripts/gen_sprompt_golden.py --check-corruptions", "files": len(results),
                   "disagreements": disagreements, "results": results}, f, indent=1)
        f.write("\n")
    print(f"{len(results)} corrupt files, {disagreements} disagreements")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--verify"]:
        for path in args[1:]:
            with open(path, "rb") as f:
                d = describe(f.read())
            print(json.dumps(d, indent=1, ensure_ascii=False))
    elif args[:1] == ["--record-swift"]:
        record_swift(args[1])
    elif args[:1] == ["--check-corruptions"]:
        check_corruptions(args[1])
    elif args[:1] == ["--fingerprint"]:
        print(json.dumps(fingerprint(args[1]), indent=1))
    else:
        generate()
