#!/usr/bin/env python3
"""Times the PyTorch reference encoder's inference (eval mode, no autograd) over
the images bench/embed.mjs wrote, in batches, on the given threads, and prints
    RESULT model=... threads=... batch=... images=... img_per_s=...
Args: TORCH_CAE_PY MODEL IMAGES_U8 N H W C BATCH THREADS"""
import importlib.util
import sys
import time

import numpy as np
import torch

ref, model, path = sys.argv[1], sys.argv[2], sys.argv[3]
n, h, w, c, batch, threads = (int(v) for v in sys.argv[4:10])
spec = importlib.util.spec_from_file_location("torch_cae", ref)
cae = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cae)

torch.manual_seed(0)
torch.set_num_threads(threads)
a = np.fromfile(path, dtype=np.uint8).reshape(n, h, w, c)
x = torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0).contiguous()
enc, _, _ = cae.seed_model(model, "nearest")
enc.eval()


def run():
    out = []
    with torch.inference_mode():
        for i in range(0, n, batch):
            out.append(enc(x[i:i + batch]))
    return torch.cat(out)


enc(x[:batch])  # warm-up (one batch)
best = float("inf")
for _ in range(2):
    t0 = time.perf_counter()
    codes = run()
    best = min(best, time.perf_counter() - t0)
print(f"RESULT model={model} threads={threads} batch={batch} images={n} img_per_s={n / best:.1f} code={codes.shape[1]}")
