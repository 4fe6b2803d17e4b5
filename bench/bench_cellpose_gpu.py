"""Cellpose throughput: our segmentation batch job against raw batched ``CellposeModel.eval``.

For a machine with a GPU (it runs on a CPU too, slowly: use ``--sites 1 --size 256`` there).
Cellpose-SAM weights with random values are written first (speed does not depend on the
values; ``--weights`` takes a real file instead). N synthetic 3-channel sites (DNA, ER, Mito;
tests/helpers/synthetic.py's image model) are written as corrected stacks, then, in the same
process, on the same images, with the same settings:

* **ours**: :func:`plateflow.segmentation.run.segment`, the ``segment`` rule's job: reads the
  stacks, segments ``sites_per_call`` sites per call (nuclei + cells, paired, confidence
  columns), writes the label stacks. The model is loaded before the clock starts (its load
  time is printed apart), as for raw.
* **raw**: ``CellposeModel.eval`` on the images in memory, the same stacks of
  ``sites_per_call`` sites, nuclei ``[DNA, 0, 0]`` and cells ``[ER, DNA, 0]``; and raw eval
  on a plain list of sites (what Cellpose evaluates image by image).

Each path runs twice after a warm-up; it prints sites/s (best of the two), the ratio
ours / raw (target >= 0.8), ``torch.cuda.max_memory_allocated`` per path, and whether the masks
are identical between the two runs. Random weights find no object at Cellpose's defaults: the
default cellprob threshold here (-1) makes the mask computation and its flow check work on many
(meaningless) candidate objects, which the flow check (0.4) then removes; ``--flow-threshold
0`` keeps them (thousands of fragments per site), the worst case for our per-object work
(pairing, probability, flow error).

    python bench/bench_cellpose_gpu.py                       # GPU: 16 sites of 1080x1080
    python bench/bench_cellpose_gpu.py --sites 1 --size 256  # CPU check
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from plateflow.core.contract import new_site_path, site_path
from plateflow.core.imageio import read_stack, write_stack
from plateflow.segmentation import DEFAULT_PARAMS, build_method
from plateflow.segmentation import run as seg_run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.synthetic import DEFAULT_PARAMS as MODEL
from helpers.synthetic import _render_site

CHANNELS = ["DNA", "ER", "Mito"]


def _args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=16)
    parser.add_argument("--size", type=int, default=1080)
    parser.add_argument("--batch-size", type=int, default=32, help="256x256 tiles per call")
    parser.add_argument("--sites-per-call", type=int, default=8)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--cellprob-threshold", type=float, default=-1.0)
    parser.add_argument("--flow-threshold", type=float, default=0.4)
    parser.add_argument("--weights", type=Path, help="a Cellpose 4 weights file (default: "
                        "random CPSAM weights written to a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-list", dest="with_list", action="store_false",
                        help="skip raw eval on a plain list (saves time on a CPU)")
    return parser.parse_args(argv)


def random_weights(folder: Path) -> Path:
    """Cellpose-SAM weights with random values (the real ViT-L architecture, ~1.2 GB)."""
    import torch
    from cellpose.vit import CPSAM

    torch.manual_seed(0)
    path = folder / "cpsam-random"
    torch.save(CPSAM().state_dict(), path)
    return path


def make_sites(n: int, size: int, folder: Path) -> tuple[list[str], list[np.ndarray]]:
    """N synthetic corrected sites as the correction stage writes them; ids and images."""
    flat = np.ones((3, size, size))
    ids, images = [], []
    for i in range(n):
        res = _render_site(np.random.default_rng(i), size, 0.0, "none", flat, MODEL)
        image = (res["image"].astype(np.float32) - MODEL["camera_offset"]) / 65535
        image = np.clip(image, 0, 1).astype(np.float32)
        well, site = f"B{2 + i // 9:02d}", str(1 + i % 9)
        write_stack(new_site_path(folder, well, site, ".tiff"), image, metadata={
            "plate": "BENCH", "well": well, "site": site, "channels": CHANNELS,
            "image_sha256": f"{i:064x}", "lineage": {"correct_illumination": "bench"}})
        ids.append(f"{well}/{site}")
        images.append(image)
    return ids, images


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def run_ours(method, params, ids, pre: Path, out: Path, weights: Path):
    """The segment job on all sites (the loaded method handed in); seconds and the labels."""
    original = seg_run.build_method
    seg_run.build_method = lambda p, weights=None: method  # already loaded: no load in timing
    try:
        _sync()
        start = time.perf_counter()
        seg_run.segment(sites=ids, preprocessed_dir=pre, params=params, out_dir=out,
                        weights=weights)
        _sync()
        seconds = time.perf_counter() - start
    finally:
        seg_run.build_method = original
    labels = [read_stack(site_path(out, *i.split("/"), ".tiff"))[0] for i in ids]
    return seconds, labels


def _rgb(first, second=None):
    image = np.zeros((*first.shape, 3), np.float32)
    image[..., 0] = first
    if second is not None:
        image[..., 1] = second
    return image


def run_raw(net, images, kwargs, sites_per_call: int, *, as_list: bool = False):
    """Raw ``CellposeModel.eval``: nuclei then cells, per group of sites; seconds and masks."""
    _sync()
    start = time.perf_counter()
    masks = []
    for first in range(0, len(images), sites_per_call):
        group = images[first:first + sites_per_call]
        nuclei = [_rgb(im[0]) for im in group]
        cells = [_rgb(im[1], im[0]) for im in group]
        for compartment in (nuclei, cells):
            if as_list:
                out, _, _ = net.eval(compartment, channel_axis=2, **kwargs)
            else:
                out, _, _ = net.eval(np.stack(compartment), channel_axis=3, **kwargs)
                out = np.asarray(out).reshape(len(group), *group[0].shape[1:])
            masks.extend(np.asarray(m) for m in out)
    _sync()
    return time.perf_counter() - start, masks


def main(argv=None) -> int:
    args = _args(argv)
    import torch

    results = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "sites": args.sites, "size": args.size, "batch_size": args.batch_size,
               "sites_per_call": args.sites_per_call, "bf16": args.bf16}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        weights = args.weights or random_weights(tmp)
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        ids, images = make_sites(args.sites, args.size, tmp / "pre")
        print(f"weights + {args.sites} sites of {args.size}^2 ready in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

        params = copy.deepcopy(DEFAULT_PARAMS)
        params.update(method="cellpose", cells_channel="ER")
        params["model"] = {"name": weights.name, "source": str(weights), "sha256": digest}
        params["cellpose"].update(batch_size=args.batch_size, sites_per_call=args.sites_per_call,
                                  bf16=args.bf16, cellprob_threshold=args.cellprob_threshold,
                                  flow_threshold=args.flow_threshold)
        method = build_method(params, weights=weights)
        method.model_config = params["model"]
        start = time.perf_counter()
        method.load()
        results["load_s"] = round(time.perf_counter() - start, 2)
        net = method.net
        kwargs = {"batch_size": args.batch_size, "flow_threshold": args.flow_threshold,
                  "cellprob_threshold": args.cellprob_threshold, "min_size": 15,
                  "normalize": {"normalize": True, "norm3D": False}}

        if torch.cuda.is_available():  # warm-up: CUDA context, kernels
            run_raw(net, images[:1], kwargs, 1)

        timings = {}
        paths = ("ours", "raw", "raw_list") if args.with_list else ("ours", "raw")
        for name in paths:
            _reset_peak()
            runs, masks = [], []
            for repeat in range(2):
                if name == "ours":
                    seconds, out = run_ours(method, params, ids, tmp / "pre",
                                            tmp / f"out{repeat}", weights)
                    out = [o[:2] for o in out]  # nuclei, cells
                else:
                    seconds, out = run_raw(net, images, kwargs, args.sites_per_call,
                                           as_list=name == "raw_list")
                runs.append(seconds)
                masks.append(out)
                print(f"{name} run {repeat + 1}: {seconds:.2f} s", flush=True)
            identical = all(np.array_equal(a, b) for a, b in zip(*masks))
            if name == "ours":
                results["nuclei_per_site"] = float(np.mean([int(o[0].max()) for o in out]))
            timings[name] = min(runs)
            results[name] = {"seconds": [round(r, 3) for r in runs],
                             "sites_per_s": round(args.sites / min(runs), 4),
                             "max_memory_gib": _peak_gib(), "identical_run_to_run": identical}
        results["ratio_ours_to_raw"] = round(timings["raw"] / timings["ours"], 3)
        if args.with_list:
            results["ratio_ours_to_raw_list"] = round(timings["raw_list"] / timings["ours"], 3)

    for name in paths:
        r = results[name]
        memory = "n/a (no GPU)" if r["max_memory_gib"] is None else f"{r['max_memory_gib']:.2f} GiB"
        print(f"{name:9s} {r['sites_per_s']:.3f} sites/s, peak GPU memory {memory}, masks "
              f"identical run to run: {r['identical_run_to_run']}")
    print(f"ratio ours / raw batched eval: {results['ratio_ours_to_raw']} (target >= 0.8); "
          f"ours / raw list eval: {results.get('ratio_ours_to_raw_list', 'not run')}; model "
          f"load {results['load_s']} s; {results['nuclei_per_site']:.0f} nuclei per site; "
          f"device {results['device']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
