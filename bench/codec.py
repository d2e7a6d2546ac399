"""Sans-IO decoder cost against how the stream is split: it must stay O(total bytes).

Run: .venv/bin/python bench/codec.py [--json FILE]

For each workload (many small frames, a few large ones) the same encoded stream is fed
whole, in 64 KiB, 4 KiB, 1 KiB and 64-byte chunks (and byte by byte for a smaller
stream). The figure is nanoseconds per input byte: for a given split it is a fixed cost
per byte plus a fixed cost per chunk, never a cost that grows with what is buffered.
It also reports, for one 64 MiB frame fed in 64 KiB chunks, the peak memory the decoder
allocates (the received chunks are not counted) as a multiple of the payload: 1.0x means
the payload is copied exactly once, when its chunks are joined.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import framekit

WORKLOADS = {
    "64 B frames": ([b"x" * 64] * 100_000, [None, 65536, 4096, 1024, 64]),
    "1 KiB frames": ([b"y" * 1024] * 8_000, [None, 65536, 4096, 1024, 64]),
    "4 MiB frames": ([b"z" * (4 << 20)] * 2, [None, 65536, 4096, 1024]),
    "64 B frames, byte by byte": ([b"w" * 64] * 2_000, [1]),
}


def decode_cost(data: bytes, chunk: int | None, expected: int) -> float:
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    best = float("inf")
    for _ in range(3):
        decoder = framekit.FrameDecoder()
        count = 0
        start = time.perf_counter()
        for piece in pieces:
            decoder.receive_data(piece)
            count += len(decoder.frames())
        elapsed = time.perf_counter() - start
        assert count == expected, (count, expected)
        best = min(best, elapsed)
    return best / len(data) * 1e9


def peak_memory_ratio(size: int = 64 << 20, chunk: int = 65536) -> float:
    data = framekit.FrameEncoder(framekit.FrameFormat(max_frame_size=size)).encode(b"q" * size)
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    decoder = framekit.FrameDecoder(framekit.FrameFormat(max_frame_size=size))
    tracemalloc.start()
    frames: list[bytes] = []
    for piece in pieces:
        decoder.receive_data(piece)
        frames += decoder.frames()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert frames and len(frames[0]) == size
    # The pieces list itself is allocated before tracing starts; only decoder work counts.
    return peak / size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    print(f"{'workload':28} {'split':>10} {'ns/byte':>9}")
    for name, (payloads, splits) in WORKLOADS.items():
        data = framekit.FrameEncoder().encode_many(payloads)
        results[name] = {}
        for chunk in splits:
            label = "whole" if chunk is None else f"{chunk} B"
            cost = decode_cost(data, chunk, len(payloads))
            results[name][label] = cost
            print(f"{name:28} {label:>10} {cost:9.3f}")
    ratio = peak_memory_ratio()
    results["64 MiB frame in 64 KiB chunks"] = {"peak memory / payload": ratio}
    print(f"\npeak traced memory decoding one 64 MiB frame in 64 KiB chunks: {ratio:.2f}x payload")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
