"""The caption encoder's cost (``pipeline.text``): measured on CPU, estimated for umT5-XXL on an H100.

    python bench/text_encoder.py            # about a minute on 2 cores
    python bench/text_encoder.py --tiny    # seconds: every section, at small sizes

Prints one JSON object:

- ``cpu``: ms per caption through ``TextEncoder.encode`` (tokenizing, batching, the forward pass, the
  copy of each caption's rows), captions of 110-130 tokens in batches of 32, with one torch thread and
  with torch's default; the tiny test model and a t5-small-shaped random T5 (d_model 512, 6 layers,
  32128-token vocabulary). Median of the rounds, after a warm-up round; ``tokenize_ms`` is the
  tokenizer's share, ``gflop`` the forward pass's FLOPs per caption (counted), so ``gflops`` is the
  rate this CPU reached.
- ``load``: a t5-small-shaped model (--tiny: a 9 MB encoder beside a 40 MB decoder) loaded in a fresh
  child process from its full encoder-decoder checkpoint and from its encoder alone, in float32 and in
  bfloat16 (--tiny: bfloat16): parameters on the device, and the resident memory that the load and one
  encode (which touches every encoder weight) added: at its peak (VmHWM), at the end, anonymous (copies:
  bfloat16 weights converted from a float32 file) and file-backed (float32 weights stay memory-mapped views
  of the safetensors file). Equal figures for both checkpoints show that the decoder is never read.
- ``digest``: this machine's SHA-256 rate, hence the seconds hashing umT5-XXL's weights would take at
  each actor start (the reason ``pipeline/text/digests.py`` remembers a file's digest per version), and
  the cost of a remembered one.
- ``h100``: FLOPs of umT5-XXL's encoder per caption, counted on a meta-device copy (no weights), at 120
  and 512 tokens, turned into time at an assumed peak and utilisation, beside WF-VAE-L's encoder per
  33x256x256 clip (139 GFLOP a frame, the issue's figure; docs/benchmarks.md counts 134) at the same
  utilisation. The utilisation is an assumption, not a measurement: no GPU was lent to this work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM, dense bfloat16 tensor cores
ASSUMED_UTILISATION = 0.5  # of that peak, for large bf16 matmuls in eager PyTorch (an assumption)
WFVAE_L_GFLOP_PER_FRAME = 139.0  # 256x256 (the issue); docs/benchmarks.md counts 134
CLIP_FRAMES = 33
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24,
                num_decoder_layers=24, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0)
CAPTION_TOKENS = (110, 130)
BATCH = 32


def captions(tokenizer, count: int, seed: int = 0) -> list[str]:
    """Captions of 110-130 tokens (this tokenizer's), of words from the test corpus."""
    from tests.support.text_models import CORPUS

    words = " ".join(CORPUS).split()
    rng, made = random.Random(seed), []
    for _ in range(count):
        target, caption = rng.randint(*CAPTION_TOKENS), []
        while len(tokenizer(" ".join(caption))["input_ids"]) < target:
            caption.append(rng.choice(words))
        made.append(" ".join(caption))
    return made


def forward_gflop(model, batches: list[tuple[int, int]]) -> float:
    """FLOPs of the forward passes over ``batches`` ((captions, padded length) each), counted on a
    meta-device copy of ``model``'s shape, in GFLOP."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        shadow = type(model)(model.config).eval()
    total = 0
    for size, length in batches:
        ids = torch.ones(size, length, dtype=torch.long, device="meta")
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            shadow(input_ids=ids)
        total += counter.get_total_flops()
    return total / 1e9


def cpu_section(folders: dict[str, Path], rounds: int) -> dict:
    import torch

    from pipeline.text import load_text_encoder
    from pipeline.text.batching import plan_batches

    default_threads = torch.get_num_threads()
    results = {}
    for name, folder in folders.items():
        encoder = load_text_encoder(folder, batch_size=BATCH)
        texts = captions(encoder.tokenizer, BATCH)
        lengths = [len(ids) for ids in encoder.token_ids(texts)]
        batches = [(len(batch), lengths[batch[0]]) for batch in plan_batches(lengths, BATCH, encoder.batch_tokens)]
        row = {"tokens_mean": round(statistics.mean(lengths), 1),
               "padded_tokens_mean": round(sum(size * length for size, length in batches) / len(lengths), 1),
               "gflop": round(forward_gflop(encoder.model, batches) / len(lengths), 3),
               "params": encoder.model.num_parameters()}
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            encoder.encode(texts)  # warm-up
            encode, tokenize = [], []
            for _ in range(rounds):
                start = time.perf_counter()
                encoder.token_ids(texts)
                tokenize.append(time.perf_counter() - start)
                start = time.perf_counter()
                encoder.encode(texts)
                encode.append(time.perf_counter() - start)
            ms = statistics.median(encode) / BATCH * 1e3
            row[f"threads_{threads}"] = {"ms_per_caption": round(ms, 3),
                                         "tokenize_ms": round(statistics.median(tokenize) / BATCH * 1e3, 3),
                                         "gflops": round(row["gflop"] / ms * 1e3, 1)}
        torch.set_num_threads(default_threads)
        results[name] = row
    return results


def load_memory(folder: Path, warm_up: Path, dtype: str) -> dict:
    """In a fresh process: the resident memory that loading ``folder``'s encoder in ``dtype`` and encoding one
    caption add, after a load of ``warm_up`` (a tiny model) has imported what loading imports and with the
    files' digests already remembered (``digests.py``), as at an actor's start once its node has hashed."""
    from pipeline.text import load_text_encoder
    from pipeline.text.digests import file_sha256

    def memory() -> dict[str, float]:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return {name: int(fields[name].split()[0]) / 1024 for name in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}

    for path in folder.iterdir():
        file_sha256(path)
    load_text_encoder(warm_up).encode(["a dog"])
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
    before = memory()
    encoder = load_text_encoder(folder, dtype=dtype)
    encoder.encode(["a dog runs"])  # touches every encoder weight
    after = memory()
    names = [name for name, _ in encoder.model.named_parameters()]
    return {"peak_mib": round(after["VmHWM"] - before["VmRSS"], 1),
            "resident_mib": round(after["VmRSS"] - before["VmRSS"], 1),
            "anonymous_mib": round(after["RssAnon"] - before["RssAnon"], 1),
            "file_mib": round(after["RssFile"] - before["RssFile"], 1),
            "params_on_device": encoder.model.num_parameters(), "device": str(encoder.device),
            "decoder_params_on_device": sum(name.startswith(("decoder.", "lm_head.")) for name in names)}


def load_section(full: Path, encoder_only: Path, warm_up: Path, dtypes: list[str]) -> dict:
    def weights_mib(folder: Path) -> float:
        return round(sum(path.stat().st_size for path in folder.glob("*.safetensors")) / 2**20, 1)

    results = {"full_checkpoint_file_mib": weights_mib(full), "encoder_only_file_mib": weights_mib(encoder_only)}
    for dtype in dtypes:  # the two checkpoints' children run side by side: each measures its own process
        children = {name: subprocess.Popen([sys.executable, __file__, "--load-memory", str(folder), str(warm_up),
                                            dtype], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                    for name, folder in (("full_checkpoint", full), ("encoder_only", encoder_only))}
        for name, child in children.items():
            out, err = child.communicate(timeout=300)
            if child.returncode:
                raise RuntimeError(f"--load-memory ({name}, {dtype}) failed:\n{err[-2000:]}")
            results[f"{name}_{dtype}"] = json.loads(out)
    return results


def digest_section(megabytes: int, folder: Path, h100: dict) -> dict:
    from pipeline.text.digests import file_sha256

    data = os.urandom(megabytes << 20)
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    rate = megabytes / (time.perf_counter() - start)
    weights = next(folder.glob("*.safetensors"))
    with tempfile.TemporaryDirectory() as cache:
        file_sha256(weights, cache)
        start = time.perf_counter()
        file_sha256(weights, cache)
        remembered_ms = (time.perf_counter() - start) * 1e3
    encoder_gb = h100["encoder_params"] * 2 / 1e9  # umT5-XXL's encoder in bfloat16, as Wan ships it
    full_gb = h100["full_params"] * 4 / 1e9  # the full encoder-decoder at 4 bytes a parameter
    return {"sha256_mb_per_s": round(rate), "umt5_xxl_encoder_bf16_s": round(encoder_gb * 1e3 / rate, 1),
            "umt5_xxl_full_fp32_s": round(full_gb * 1e3 / rate, 1), "remembered_ms": round(remembered_ms, 3)}


def h100_section() -> dict:
    import torch
    from transformers import UMT5Config, UMT5EncoderModel, UMT5ForConditionalGeneration

    config = UMT5Config(**UMT5_XXL)
    with torch.device("meta"):
        encoder = UMT5EncoderModel(config).eval()
        full = UMT5ForConditionalGeneration(config)
    rate = H100_BF16_DENSE_TFLOPS * ASSUMED_UTILISATION * 1e3  # GFLOP/s
    vae_gflop = WFVAE_L_GFLOP_PER_FRAME * CLIP_FRAMES
    result = {"peak_tflops": H100_BF16_DENSE_TFLOPS, "utilisation": ASSUMED_UTILISATION,
              "encoder_params": encoder.num_parameters(), "full_params": full.num_parameters(),
              "wfvae_l_gflop_per_clip": vae_gflop, "wfvae_l_ms_per_clip": round(vae_gflop / rate * 1e3, 2)}
    for tokens in (120, 512):
        gflop = forward_gflop(encoder, [(1, tokens)])
        result[f"tokens_{tokens}"] = {"gflop_per_caption": round(gflop, 1),
                                      "ms_per_caption": round(gflop / rate * 1e3, 2),
                                      "of_a_clip": round(gflop / vae_gflop, 3)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="every section at small sizes, in seconds")
    parser.add_argument("--load-memory", nargs=3, help=argparse.SUPPRESS)  # the load section's child
    args = parser.parse_args()
    if args.load_memory:
        folder, warm_up, dtype = args.load_memory
        print(json.dumps(load_memory(Path(folder), Path(warm_up), dtype)))
        return
    from tests.support.text_models import T5_SMALL, TINY, TextModelShape, make_text_model

    # --tiny, in place of t5-small: a decoder of 40 MB beside an encoder of 9 MB, for the load section
    small = TextModelShape(d_model=256, d_kv=32, d_ff=1024, num_layers=2, num_decoder_layers=8, num_heads=8,
                           vocab_size=1024) if args.tiny else T5_SMALL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.environ["WFVAE_CACHE"] = str(root / "cache")  # digests remembered here, not in the user's cache
        tiny = make_text_model(root / "tiny", "t5", shape=TINY)
        small_encoder = make_text_model(root / "small", "t5", shape=small)
        small_full = make_text_model(root / "small-full", "t5", shape=small, full=True)
        report: dict = {"tiny": args.tiny, "cpu_count": os.cpu_count(), "seconds": {}}
        sections = {
            "cpu": lambda: cpu_section({"tiny": tiny, "t5_small_shape": small_encoder}, 1 if args.tiny else 5),
            "load": lambda: load_section(small_full, small_encoder, tiny,
                                         ["bfloat16"] if args.tiny else ["float32", "bfloat16"]),
            "h100": h100_section,
            "digest": lambda: digest_section(32 if args.tiny else 512, small_full, report["h100"])}
        for name, run in sections.items():
            section_started = time.perf_counter()
            report[name] = run()
            report["seconds"][name] = round(time.perf_counter() - section_started, 1)
    report["seconds"]["total"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
